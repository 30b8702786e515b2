//! Templates: parsing every file under `templates/`, and checking the ones a pipeline or the
//! engine names exist and read only what they are given.

use super::syntax_errors::{error_detail, template_error_position};
use super::variables::check_template_variable;
use super::{Compiler, Scope};
use crate::config::schema::suggest;
use crate::config::spec::FormatSpec;
use crate::diagnostic::{Code, Diagnostic, Position};
use crate::steps::ReplyTemplates;
use crate::template::{Templates, WELCOME_CONTEXT_NAMES};

/// Templates used by `extract` steps that name no `ask` templates of their own.
pub(super) const DEFAULT_ASK: (&str, &str) = ("_shared/ask.chat.md.j2", "_shared/ask.voice.txt.j2");

/// The reply when an action stops after too many unusable answers.
pub(super) const GIVE_UP: (&str, &str) = ("_shared/give_up.chat.md.j2", "_shared/give_up.voice.txt.j2");

/// The reply to "no" at a `confirm` step that names no `declined` templates.
pub(super) const DECLINED: (&str, &str) = ("_shared/declined.chat.md.j2", "_shared/declined.voice.txt.j2");

/// Said after the replies to a message that asked for several things, about a part of it no
/// intent could read ("show the registry and blorp the frobnicator").
const UNREAD: (&str, &str) = ("_shared/unread.chat.md.j2", "_shared/unread.voice.txt.j2");

/// Names the "not understood" templates are given: the parts, and the channel.
const UNREAD_CONTEXT_NAMES: &[&str] = &["unread", "channel"];

/// Templates greeting a client that connects over WebSocket.
const WELCOME: (&str, &str) = ("_shared/welcome.chat.md.j2", "_shared/welcome.voice.txt.j2");

impl Compiler<'_> {
    /// Every file under `templates/`, parsed; one that does not parse is reported and left out.
    pub(super) fn templates(&mut self) -> Templates {
        let mut templates = Templates::new();
        for (path, text) in self.files.under("templates", ".j2") {
            let name = path.trim_start_matches("templates/");
            if let Err(error) = templates.add(name, text) {
                let position = template_error_position(&error, text);
                self.report(
                    Diagnostic::new(
                        Code::TemplateSyntax,
                        path,
                        position,
                        format!("template syntax error: {}", error_detail(&error)),
                    )
                    .with_help("check that every `{{`, `{%` and `{#` is closed and every block has its `end` tag"),
                );
            }
        }
        templates
    }

    /// The welcome templates: they must exist and read only what a greeting has.
    pub(super) fn welcome(&mut self, templates: &Templates) -> Option<ReplyTemplates> {
        self.engine_templates(
            templates,
            WELCOME,
            WELCOME_CONTEXT_NAMES,
            "the WebSocket greeting",
            "it greets clients that connect over WebSocket",
        )
    }

    /// The templates said about the part of a several-request message no intent could read.
    pub(super) fn unread(&mut self, templates: &Templates) -> Option<ReplyTemplates> {
        self.engine_templates(
            templates,
            UNREAD,
            UNREAD_CONTEXT_NAMES,
            "the reply about a part of a message nobody understood",
            "it says which part of a several-request message was not understood",
        )
    }

    /// A pair of templates the engine renders itself (not a pipeline's): each must exist and use
    /// only the names it is given.
    fn engine_templates(
        &mut self,
        templates: &Templates,
        (chat, voice): (&str, &str),
        names: &[&str],
        what: &str,
        purpose: &str,
    ) -> Option<ReplyTemplates> {
        let mut ok = true;
        for name in [chat, voice] {
            let path = format!("templates/{name}");
            let Some(source) = self.files.get(&path).map(str::to_owned) else {
                ok = false;
                self.report(
                    Diagnostic::new(
                        Code::MissingTemplate,
                        &path,
                        Position::default(),
                        format!("the template `{name}` ({what}) is missing"),
                    )
                    .with_help(format!("create templates/{name}: {purpose}")),
                );
                continue;
            };
            let allowed: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            for variable in templates.undeclared_variables(name) {
                if let Some(diagnostic) = check_template_variable(&path, &source, &variable, &allowed, &[], what) {
                    ok = false;
                    self.report(diagnostic);
                }
            }
        }
        ok.then(|| ReplyTemplates { chat: chat.to_owned(), voice: voice.to_owned() })
    }

    /// One of the shared reply pairs (`_shared/…`), checked like a pipeline's own.
    pub(super) fn shared_templates(
        &mut self,
        scope: &Scope,
        here: &str,
        (chat, voice): (&str, &str),
        extra: &[&str],
    ) -> Option<ReplyTemplates> {
        let spec = FormatSpec { chat: chat.to_owned(), voice: voice.to_owned() };
        self.reply_templates(scope, here, &spec, extra)
    }

    /// A chat and a voice template, each given the scope's names and `extra`.
    pub(super) fn reply_templates(
        &mut self,
        scope: &Scope,
        here: &str,
        spec: &FormatSpec,
        extra: &[&str],
    ) -> Option<ReplyTemplates> {
        let mut ok = true;
        for (key, name) in [("chat", &spec.chat), ("voice", &spec.voice)] {
            let pointer = format!("{here}/{key}");
            ok &= self.template_file(scope, &pointer, name, extra);
        }
        ok.then(|| ReplyTemplates { chat: spec.chat.clone(), voice: spec.voice.clone() })
    }

    /// A template a pipeline names: it must exist, parse, and use only names it will be given.
    pub(super) fn template_file(&mut self, scope: &Scope, pointer: &str, name: &str, extra: &[&str]) -> bool {
        let doc = scope.doc;
        if !scope.templates.contains(name) {
            if self.files.get(&format!("templates/{name}")).is_some() {
                return false; // it exists but did not parse: already reported against the template
            }
            let mut diagnostic = Diagnostic::new(
                Code::MissingTemplate,
                &doc.file,
                doc.at(pointer),
                format!("template `{name}` does not exist (looked for templates/{name})"),
            );
            let existing: Vec<String> = self
                .files
                .under("templates", ".j2")
                .map(|(p, _)| p.trim_start_matches("templates/").to_owned())
                .collect();
            if let Some(best) = suggest(name, existing.iter().map(String::as_str)) {
                diagnostic = diagnostic.with_help(format!("did you mean `{best}`?"));
            } else {
                diagnostic = diagnostic
                    .with_help(format!("create templates/{name}, or fix the path (it is relative to templates/)"));
            }
            self.report(diagnostic);
            return false;
        }
        let mut allowed: Vec<String> = scope.known.clone();
        allowed.extend(extra.iter().map(|s| s.to_string()));
        let path = format!("templates/{name}");
        let source = self.files.get(&path).unwrap_or_default().to_owned();
        let mut ok = true;
        for variable in scope.templates.undeclared_variables(name) {
            if let Some(diagnostic) =
                check_template_variable(&path, &source, &variable, &allowed, &scope.slot_names, &doc.file)
            {
                self.report(diagnostic);
                ok = false;
            }
        }
        ok
    }
}
