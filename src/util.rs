//! General helpers any module may use. It imports nothing from the crate, so it can sit below
//! every layer (see ARCHITECTURE.md, "Layers").

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Now, as RFC 3339 UTC with a `Z` and milliseconds (the mesh's send format).
pub fn utc_timestamp() -> String {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(now.millisecond() as u32 * 1_000_000).unwrap_or(now);
    now.format(&Rfc3339).unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// "5 seconds", "1 second", "250 milliseconds": read aloud as well as shown.
pub fn human_duration(d: Duration) -> String {
    let (n, unit) = if d.as_millis().is_multiple_of(1000) {
        (d.as_secs() as u128, "second")
    } else {
        (d.as_millis(), "millisecond")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Serde for state enums by their strum names (`IntoStaticStr` to write, `EnumString` and
/// `VariantNames` to read), so each name is written once, in the enum's `strum(...)`, and
/// metrics labels, templates and stored data all use it.
#[macro_export]
macro_rules! serde_by_name {
    ($($state:ty),+ $(,)?) => {$(
        impl serde::Serialize for $state {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(<&'static str>::from(self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $state {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                name.parse().map_err(|_| {
                    serde::de::Error::unknown_variant(&name, <$state as strum::VariantNames>::VARIANTS)
                })
            }
        }
    )+};
}
