"""Offline checks of the deployment files (there is no Docker engine on the build machines).

- docker-compose.yml against the Compose Specification's JSON Schema (deploy/compose-spec.json,
  copied from compose-spec/compose-go, schema/compose-spec.json, Apache-2.0), plus what the
  schema cannot see: files it points at and services it depends on;
- the Dockerfile with hadolint (installed from PyPI by deploy/check.sh).
"""

import json
import pathlib
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def check_compose() -> list[str]:
    problems = []
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    schema = json.loads((ROOT / "deploy" / "compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(compose), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in error.path) or "(top level)"
        problems.append(f"docker-compose.yml {where}: {error.message}")
    services = compose.get("services", {})
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            if dependency not in services:
                problems.append(f"docker-compose.yml services/{name}: depends on unknown service {dependency}")
        for secret in service.get("secrets", []):
            if secret not in compose.get("secrets", {}):
                problems.append(f"docker-compose.yml services/{name}: secret {secret} is not declared")
        build = service.get("build", {})
        if build and not (ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).is_file():
            problems.append(f"docker-compose.yml services/{name}: no Dockerfile in its build context")
    for name, secret in compose.get("secrets", {}).items():
        if "file" in secret and not secret["file"].startswith("./secrets/"):
            problems.append(f"docker-compose.yml secrets/{name}: keep secret files under ./secrets (ignored by git and docker)")
    return problems


if __name__ == "__main__":
    problems = check_compose()
    for problem in problems:
        print(problem)
    print(f"docker-compose.yml: {'OK' if not problems else f'{len(problems)} problem(s)'} (Compose Specification schema)")
    sys.exit(1 if problems else 0)
