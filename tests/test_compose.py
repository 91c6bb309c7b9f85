"""The production ``docker-compose.yml``: a valid Compose file, pinned images, services
wired in the right order, scalable workers, object lock, search attributes, no secrets;
TLS in front, nothing else published on every interface, each process given only the
secrets it uses, separate database roles.

Static checks only: nothing here needs Docker.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from temporalio.api.enums.v1 import IndexedValueType

from models import search_attributes

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"
SCHEMA_PACKAGE = "check_jsonschema.builtin_schemas.vendor"

APP_IMAGE_REPOSITORY = "mutabaqa"
APP_SERVICES = ("migrate", "api", "worker")
REQUIRED_SERVICES = (
    "proxy",
    "postgres",
    "temporal",
    "temporal-ui",
    "minio",
    "minio-init",
    "migrate",
    "api",
    "worker",
)
# Services that others wait for with `service_healthy`, and the API.
HEALTHCHECKED = ("proxy", "postgres", "temporal", "temporal-ui", "minio", "api")
LONG_RUNNING = (*HEALTHCHECKED, "worker")
SEARCH_ATTRIBUTES = {
    "MutabaqaStatus": "Keyword",
    "MutabaqaManufacturer": "Keyword",
    "MutabaqaCentre": "Keyword",
    "MutabaqaScheme": "Keyword",
    "MutabaqaKind": "Keyword",
}
APP_VARIABLES = (
    "MUTABAQA_ENV",
    "MUTABAQA_DATABASE_URL",
    "MUTABAQA_TEMPORAL_ADDRESS",
    "MUTABAQA_TEMPORAL_NAMESPACE",
    "MUTABAQA_TEMPORAL_TASK_QUEUE",
    "MUTABAQA_S3_ENDPOINT",
    "MUTABAQA_S3_PUBLIC_ENDPOINT",
    "MUTABAQA_S3_ACCESS_KEY",
    "MUTABAQA_S3_SECRET_KEY",
    "MUTABAQA_S3_EVIDENCE_BUCKET",
    "MUTABAQA_S3_CERTIFICATES_BUCKET",
    "MUTABAQA_S3_OBJECT_LOCK_MODE",
    "MUTABAQA_PUBLIC_BASE_URL",
    "MUTABAQA_AUDIT_KEY",
    "MUTABAQA_TEMPORAL_SEAL_KEY",
    "MUTABAQA_TEMPORAL_PAYLOAD_KEYS",
    "MUTABAQA_DATA_DIR",
)
#: Variables only some processes get: the API's login secrets and the public key; the
#: workers' private signing material and mail login.
ONLY_IN = {
    "MUTABAQA_JWT_SECRET": {"api"},
    "MUTABAQA_ADMIN_EMAIL": {"api"},
    "MUTABAQA_ADMIN_PASSWORD": {"api"},
    "MUTABAQA_SIGNING_PUBLIC_KEY_PATH": {"api"},
    "MUTABAQA_SIGNING_KEY_PATH": {"worker"},
    "MUTABAQA_PDF_SIGNING_DIR": {"worker"},
    "MUTABAQA_SMTP_PASSWORD": {"worker"},
}

# `${NAME}` / `${NAME:?message}` / `${NAME?message}`: taken from the environment, no default.
REQUIRED_VARIABLE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*)?\}$")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|PWD|SECRET|TOKEN|KEY")
NOT_A_SECRET_SUFFIXES = ("_FILE", "_PATH", "_BUCKET")
URL_PASSWORD = re.compile(r"://[^/@\s:]+:([^@\s]+)@")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
VERSION_TAG = re.compile(r"\d+\.\d+|RELEASE\.\d{4}-\d{2}-\d{2}")


@functools.cache
def _compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "docker-compose.yml is not a mapping"
    return document


def _services() -> dict[str, dict[str, Any]]:
    services = _compose().get("services")
    assert isinstance(services, dict) and services, "no services"
    return services


def _service(name: str) -> dict[str, Any]:
    services = _services()
    assert name in services, f"service {name!r} is missing"
    return services[name]


def _environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {pair[0]: pair[1] if len(pair) == 2 else None for pair in pairs}
    return dict(env)


def _script(service: dict[str, Any]) -> str:
    """Entrypoint and command as one text (a one-shot job's shell script)."""
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(str(item) for item in value)
    return "\n".join(parts)


def _with_defaults(text: str) -> str:
    """Resolve `${NAME:-default}` to its default, as compose does with NAME unset."""

    def replace(match: re.Match[str]) -> str:
        operator, argument = match.group(2), match.group(3)
        return argument if operator in (":-", "-") else ""

    return INTERPOLATION.sub(replace, text)


def _split_image(image: str) -> tuple[str, str | None]:
    reference = image.split("@", 1)[0]
    repository, _, last = reference.rpartition("/")
    if ":" in last:
        name, tag = last.split(":", 1)
        return (f"{repository}/{name}" if repository else name), tag
    return reference, None


def _service_running(fragment: str) -> str:
    """The one service whose entrypoint/command contains ``fragment``."""
    found = [name for name, svc in _services().items() if fragment in _script(svc)]
    assert len(found) == 1, f"expected one service running {fragment!r}, found {found}"
    return found[0]


def _is_one_shot(service: dict[str, Any]) -> bool:
    """A job that runs once: no restart policy (compose then waits for it to exit)."""
    restart: str = service.get("restart", "no")
    return restart == "no"


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short syntax: no condition at all
        return {name: {} for name in deps}
    return {name: (spec or {}) for name, spec in deps.items()}


# --- the file as a whole --------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    resource = importlib.resources.files(SCHEMA_PACKAGE).joinpath("compose-spec.json")
    schema = json.loads(resource.read_text(encoding="utf-8"))
    assert "$schema" in schema, "the specification names no $schema"
    with warnings.catch_warnings():
        # jsonschema warns (DeprecationWarning) when $schema names no draft it knows.
        warnings.simplefilter("error", DeprecationWarning)
        validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)

    errors = sorted(validator_class(schema).iter_errors(_compose()), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)


@pytest.mark.parametrize("name", REQUIRED_SERVICES)
def test_required_service_exists(name: str) -> None:
    _service(name)


def test_temporal_ui_runs_the_temporal_ui_image() -> None:
    repository, _ = _split_image(_service("temporal-ui")["image"])
    assert repository == "temporalio/ui"


# --- images ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(_compose().get("services") or {}))
def test_image_is_pinned(name: str) -> None:
    service = _service(name)
    assert "image" in service, f"{name}: no image (the app image is named too)"
    image = service["image"]
    repository, tag = _split_image(_with_defaults(image))
    if "build" in service:
        assert repository == APP_IMAGE_REPOSITORY, f"{name}: builds {image!r}"
    assert tag, f"{name}: {image!r} has no tag"
    assert tag != "latest", f"{name}: {image!r} uses latest"
    assert VERSION_TAG.search(tag), f"{name}: {image!r} has no explicit version"
    if "build" not in service:
        assert "$" not in image, f"{name}: third-party image {image!r} depends on a variable"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_builds_the_app_image(name: str) -> None:
    service = _service(name)
    assert service.get("build") in (".", {"context": "."}), f"{name}: build {service.get('build')}"
    assert _split_image(_with_defaults(service["image"]))[0] == APP_IMAGE_REPOSITORY


def test_temporal_admin_tools_match_the_server_version() -> None:
    _, server_version = _split_image(_service("temporal")["image"])
    admin_tools = {
        _split_image(svc["image"])[1]
        for svc in _services().values()
        if _split_image(svc["image"])[0] == "temporalio/admin-tools"
    }
    assert admin_tools == {server_version}, f"server {server_version}, admin-tools {admin_tools}"


# --- ordering and health --------------------------------------------------------------


@pytest.mark.parametrize("name", HEALTHCHECKED)
def test_long_running_service_has_a_healthcheck(name: str) -> None:
    healthcheck = _service(name).get("healthcheck")
    assert healthcheck, f"{name}: no healthcheck"
    assert not healthcheck.get("disable"), f"{name}: healthcheck disabled"
    test = healthcheck.get("test")
    assert test and test not in (["NONE"], "NONE"), f"{name}: empty healthcheck"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_service_restarts(name: str) -> None:
    assert _service(name).get("restart") in ("always", "unless-stopped"), name


def test_one_shot_jobs_do_not_restart() -> None:
    jobs = {
        "migrate",
        "minio-init",
        _service_running("search-attribute create"),
        _service_running("temporal-sql-tool"),
    }
    for name in jobs:
        assert _is_one_shot(_service(name)), f"{name} is a one-shot job: no restart policy"


def test_every_dependency_has_the_right_condition() -> None:
    for name, service in _services().items():
        for dep_name, dep in _depends_on(service).items():
            dependency = _service(dep_name)
            condition = dep.get("condition")
            if _is_one_shot(dependency):
                assert condition == "service_completed_successfully", (name, dep_name, condition)
            else:
                assert condition == "service_healthy", (name, dep_name, condition)
                assert dependency.get("healthcheck"), f"{name} waits on {dep_name}: no check"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_app_process_waits_for_the_stack_and_the_set_up_jobs(name: str) -> None:
    depends_on = _service(name).get("depends_on")
    assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
    expected = {
        "postgres": "service_healthy",
        "temporal": "service_healthy",
        "minio": "service_healthy",
        "migrate": "service_completed_successfully",
        "minio-init": "service_completed_successfully",
        _service_running("search-attribute create"): "service_completed_successfully",
    }
    actual = {dep: (spec or {}).get("condition") for dep, spec in depends_on.items()}
    for dep, condition in expected.items():
        assert actual.get(dep) == condition, f"{name} -> {dep}: {actual.get(dep)}"


def test_migrate_runs_migrations_then_the_seed() -> None:
    migrate = _service("migrate")
    assert "mutabaqa migrate && mutabaqa seed" in _script(migrate)
    assert _depends_on(migrate)["postgres"].get("condition") == "service_healthy"


def test_api_serves_on_port_8000_and_checks_its_health_endpoint() -> None:
    api = _service("api")
    assert api["command"] == ["api", "--host", "0.0.0.0", "--port", "8000"]
    assert all(str(port).endswith(":8000") for port in api.get("ports", [])), api.get("ports")
    test = api["healthcheck"]["test"]
    text = " ".join(test) if isinstance(test, list) else test
    assert "http://127.0.0.1:8000/health" in text and "urllib" in text


# --- scaling --------------------------------------------------------------------------


def test_worker_is_scalable() -> None:
    worker = _service("worker")
    assert worker.get("command") == ["worker"]
    assert "container_name" not in worker, "a fixed container_name prevents --scale"
    assert not worker.get("ports"), "published ports clash when the worker is scaled"
    assert "hostname" not in worker


# --- object store ---------------------------------------------------------------------


def _expand_drives(argument: str) -> list[str]:
    match = re.search(r"\{(\d+)\.\.\.(\d+)\}", argument)
    if not match:
        return [argument]
    first, last = int(match.group(1)), int(match.group(2))
    return [
        argument[: match.start()] + str(i) + argument[match.end() :] for i in range(first, last + 1)
    ]


def test_minio_erasure_codes_over_at_least_four_drives() -> None:
    minio = _service("minio")
    command = minio["command"]
    args = command if isinstance(command, list) else command.split()
    assert args[0] == "server", args
    drives = [
        drive
        for arg in args[1:]
        if not arg.startswith("-") and (arg.startswith("/") or "://" in arg)
        for drive in _expand_drives(arg)
    ]
    assert len(drives) >= 4, f"erasure coding needs at least 4 drives, got {drives}"

    mounts = {}
    for volume in minio.get("volumes", []):
        if isinstance(volume, dict):
            mounts[volume["target"]] = _with_defaults(volume["source"])
        else:
            source, target = _with_defaults(str(volume)).split(":")[:2]
            mounts[target] = source
    local = [drive for drive in drives if drive.startswith("/")]
    for drive in local:
        assert drive in mounts, f"drive {drive} is not a volume"
    sources = [mounts[drive] for drive in local]
    assert len(set(sources)) == len(sources), f"drives share a volume: {sources}"


@pytest.mark.parametrize(
    ("variable", "default"),
    [
        ("MUTABAQA_S3_EVIDENCE_BUCKET", "mutabaqa-evidence"),
        ("MUTABAQA_S3_CERTIFICATES_BUCKET", "mutabaqa-certificates"),
    ],
)
def test_bucket_is_created_with_object_lock(variable: str, default: str) -> None:
    init = _service("minio-init")
    env = _environment(init)
    assert _with_defaults(env[variable]) == default
    assert env[variable] == _environment(_service("api"))[variable], "app and job disagree"

    makes = [
        line
        for line in _script(init).splitlines()
        if re.search(r"\bmc\s+mb\b", line) and variable in line
    ]
    assert makes, f"no `mc mb` for {variable}"
    for line in makes:
        assert "--with-lock" in line, f"bucket made without object lock: {line.strip()}"
        assert "--ignore-existing" in line, f"bucket creation is not idempotent: {line.strip()}"


# --- Temporal -------------------------------------------------------------------------


def test_search_attribute_job_registers_the_keyword_attributes() -> None:
    job = _service(_service_running("search-attribute create"))
    script = _script(job)
    registered = dict(re.findall(r"--name\s+(\w+)\s+--type\s+(\w+)", script))
    assert registered == SEARCH_ATTRIBUTES

    in_code = {
        key.name: IndexedValueType.Name(IndexedValueType.ValueType(key.indexed_value_type))
        for key in search_attributes.ALL
    }
    assert in_code == {
        name: "INDEXED_VALUE_TYPE_" + kind.upper() for name, kind in registered.items()
    }, "workflows/search_attributes.py and the compose job disagree"

    namespace = _environment(job).get("TEMPORAL_NAMESPACE")
    assert namespace == "default" or "--namespace default" in script
    assert "namespace create" in script, "the job does not create the namespace"


def test_temporal_schema_job_sets_up_both_databases() -> None:
    job = _service(_service_running("temporal-sql-tool"))
    script = _script(job)
    for database in ("temporal", "temporal_visibility"):
        for step in ("create", "setup-schema", "update-schema"):
            assert re.search(rf"--db {database} {step}\b", script), (database, step)
    assert _depends_on(_service("temporal")) == {
        _service_running("temporal-sql-tool"): {"condition": "service_completed_successfully"}
    }


# --- configuration and secrets --------------------------------------------------------


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_runs_in_production_with_the_full_configuration(name: str) -> None:
    service = _service(name)
    env = _environment(service)
    assert env.get("MUTABAQA_ENV") == "production"
    missing = [variable for variable in APP_VARIABLES if variable not in env]
    assert not missing, f"{name}: missing {missing}"
    assert env["MUTABAQA_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["MUTABAQA_S3_ENDPOINT"] == "http://minio:9000"
    assert env["MUTABAQA_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert REQUIRED_VARIABLE.match(env["MUTABAQA_S3_PUBLIC_ENDPOINT"])


@pytest.mark.parametrize("variable", sorted(ONLY_IN))
def test_each_secret_goes_only_to_the_process_that_uses_it(variable: str) -> None:
    given = {name for name, svc in _services().items() if variable in _environment(svc)}
    assert given == ONLY_IN[variable]


def test_the_private_signing_key_is_mounted_into_the_workers_only() -> None:
    def attached(service: dict[str, Any]) -> list[str]:
        return [
            item if isinstance(item, str) else item.get("target", item["source"])
            for item in service.get("secrets", [])
        ]

    worker = _service("worker")
    key_path = _environment(worker)["MUTABAQA_SIGNING_KEY_PATH"]
    assert key_path.startswith("/run/secrets/"), key_path
    assert key_path.removeprefix("/run/secrets/") in attached(worker)
    for name, service in _services().items():
        if name != "worker":
            assert not attached(service), f"{name} is given {attached(service)}"
            mounts = [
                str(v.get("target") if isinstance(v, dict) else v)
                for v in service.get("volumes", [])
            ]
            assert not any("pki" in mount for mount in mounts), f"{name} mounts the PDF key"

    api = _service("api")
    public = _environment(api)["MUTABAQA_SIGNING_PUBLIC_KEY_PATH"]
    configs = {c["target"]: c["source"] for c in api.get("configs", []) if isinstance(c, dict)}
    assert public in configs, f"the API's public key {public} is not mounted"
    source = (_compose().get("configs") or {})[configs[public]]
    assert "MUTABAQA_SIGNING_PUBLIC_KEY_FILE" in source["file"]
    assert REQUIRED_VARIABLE.match(source["file"])


def test_object_lock_mode_defaults_to_compliance() -> None:
    for name in APP_SERVICES:
        mode = _environment(_service(name))["MUTABAQA_S3_OBJECT_LOCK_MODE"]
        assert _with_defaults(mode) == "COMPLIANCE", f"{name}: {mode}"


def test_signing_key_secret_comes_from_a_required_file_variable() -> None:
    secrets = _compose().get("secrets") or {}
    assert secrets, "no top-level secrets"
    for name, spec in secrets.items():
        assert set(spec) == {"file"}, f"secret {name}: {spec}"
        assert REQUIRED_VARIABLE.match(spec["file"]), f"secret {name}: {spec['file']}"
    signing = secrets.get("mutabaqa_signing_key", {}).get("file", "")
    assert "MUTABAQA_SIGNING_KEY_FILE" in signing


def _all_environments() -> list[tuple[str, str, Any]]:
    return [
        (service_name, variable, value)
        for service_name, service in _services().items()
        for variable, value in _environment(service).items()
    ]


OPTIONAL_EMPTY_VARIABLE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:-\}$")


def test_no_secret_is_written_in_the_file() -> None:
    checked = set()
    for service_name, variable, value in _all_environments():
        if not SECRET_NAME.search(variable) or variable.endswith(NOT_A_SECRET_SUFFIXES):
            continue
        checked.add(variable)
        # Required secrets: ${VAR:?message}; optional ones (SMTP login): ${VAR:-} — never a
        # literal value, and never a non-empty default.
        assert isinstance(value, str) and (
            REQUIRED_VARIABLE.match(value) or OPTIONAL_EMPTY_VARIABLE.match(value)
        ), (
            f"{service_name}: {variable} must come from the environment as ${{VAR:?...}} "
            f"(or ${{VAR:-}} when optional), not {value!r}"
        )
    assert {
        "POSTGRES_PASSWORD",
        "MUTABAQA_DB_PASSWORD",
        "TEMPORAL_DB_PASSWORD",
        "MINIO_ROOT_PASSWORD",
        "MUTABAQA_S3_ACCESS_KEY",
        "MUTABAQA_S3_SECRET_KEY",
        "MUTABAQA_JWT_SECRET",
        "MUTABAQA_ADMIN_PASSWORD",
        "MUTABAQA_AUDIT_KEY",
    } <= checked


def test_credentials_in_urls_and_user_names_come_from_the_environment() -> None:
    for service_name, variable, value in _all_environments():
        if not isinstance(value, str):
            continue
        for password in URL_PASSWORD.findall(value):
            assert REQUIRED_VARIABLE.match(password), f"{service_name}: {variable} embeds one"
        if variable == "MINIO_ROOT_USER":
            assert REQUIRED_VARIABLE.match(value), f"{service_name}: {variable}={value!r}"


def test_no_well_known_default_credentials() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for default in ("minioadmin", "change-me", "changeme"):
        assert default not in text.lower(), default


# --- the edge: TLS, published ports ---------------------------------------------------


def _published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, container port) of each published port, defaults resolved."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip", "0.0.0.0"), str(port["target"])))
            continue
        parts = _with_defaults(str(port)).split("/")[0].split(":")
        host = parts[0] if len(parts) == 3 else "0.0.0.0"
        found.append((host, parts[-1]))
    return found


def test_only_the_proxy_is_published_on_every_interface() -> None:
    for name, service in _services().items():
        for host, port in _published(service):
            if name == "proxy":
                assert port in ("80", "443"), f"proxy publishes {port}"
            else:
                assert host == "127.0.0.1", f"{name} publishes {port} on {host!r}"
    assert {port for _, port in _published(_service("proxy"))} == {"80", "443"}


def test_the_proxy_terminates_tls_for_the_api_and_the_s3_api() -> None:
    proxy = _service("proxy")
    assert _split_image(proxy["image"])[0] == "caddy"
    assert _depends_on(proxy)["api"] == {"condition": "service_healthy"}
    configs = {c["target"]: c["source"] for c in proxy.get("configs", []) if isinstance(c, dict)}
    caddyfile = (_compose().get("configs") or {})[configs["/etc/caddy/Caddyfile"]]["content"]
    sites = re.findall(r"^(\S.*?)\s*\{\s*$", caddyfile, re.MULTILINE)
    assert len(sites) == 2 and all(REQUIRED_VARIABLE.match(site) for site in sites), sites
    assert "MUTABAQA_DOMAIN" in sites[0] and "MUTABAQA_S3_DOMAIN" in sites[1]
    # A bare host name: Caddy serves it over HTTPS with a certificate of its own.
    assert "http://" not in caddyfile and "tls internal" not in caddyfile
    assert "reverse_proxy api:8000" in caddyfile
    assert "respond /metrics* 404" in caddyfile  # the record's figures stay inside
    assert "reverse_proxy minio:9000" in caddyfile
    assert "Strict-Transport-Security" in caddyfile


# --- PostgreSQL roles -----------------------------------------------------------------


def _database_user(url: str) -> str:
    match = re.match(r"^[a-z+]+://([^:@/]+)", url)
    assert match, url
    return match.group(1)


def test_the_application_and_temporal_log_in_with_roles_of_their_own() -> None:
    postgres = _environment(_service("postgres"))
    superuser = postgres.get("POSTGRES_USER", "postgres")
    app_user = _database_user(_environment(_service("api"))["MUTABAQA_DATABASE_URL"])
    temporal = _environment(_service("temporal"))
    schema_job = _environment(_service(_service_running("temporal-sql-tool")))
    assert temporal["POSTGRES_USER"] == schema_job["SQL_USER"]
    assert len({superuser, app_user, temporal["POSTGRES_USER"]}) == 3
    assert "TEMPORAL_DB_PASSWORD" in temporal["POSTGRES_PWD"]
    assert "TEMPORAL_DB_PASSWORD" in schema_job["SQL_PASSWORD"]
    assert "MUTABAQA_DB_PASSWORD" in _environment(_service("api"))["MUTABAQA_DATABASE_URL"]

    targets = {
        c["target"]: c["source"]
        for c in _service("postgres").get("configs", [])
        if isinstance(c, dict)
    }
    init = [
        source for target, source in targets.items() if "/docker-entrypoint-initdb.d/" in target
    ]
    assert init, "no init script creates the roles"
    script = (_compose().get("configs") or {})[init[0]]["content"]
    for role in (app_user, temporal["POSTGRES_USER"]):
        create = re.search(rf"CREATE ROLE {role}\b([^;]*);", script)
        assert create, f"the init script does not create {role}"
        assert "NOSUPERUSER" in create.group(1) and "LOGIN" in create.group(1)
    assert re.search(rf"CREATE DATABASE mutabaqa OWNER {app_user}\b", script)
    assert "CREATEDB" in re.search(r"CREATE ROLE temporal\b([^;]*);", script).group(1)  # type: ignore[union-attr]
