"""E-mail notifications: composed in French and Arabic, sent to the right people over a real
SMTP server (aiosmtpd), retried by Temporal while the server is down."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.notifications import (
    NOTIFY_START_TO_CLOSE,
    SMTP_MISCONFIGURED,
    SMTP_REJECTED,
    SMTP_UNAVAILABLE,
    NotificationActivities,
    message_id_for,
)
from domain.effects import DeliveryPolicy, EffectKind
from models.accounts import Organization, Product, User
from models.notifications import AppealOutcome, NotificationKind, NotifyInput, NotifyResult
from models.reference import Scheme, TechnicalCentre
from models.requests import CertificationRequest, RequestKind, RequestStatus
from mutabaqa.clients import connect_temporal
from mutabaqa.db import session_scope
from mutabaqa.mail import compose
from mutabaqa.settings import Settings, SettingsError, load_settings
from tests.smtp import SmtpSink, free_port
from tests.tls import ServerPki, make_pki
from workflows.retries import delivery_retry

SCHEME_CODE = "FFP2-NM-EN-149"
ARABIC = re.compile(r"[\u0600-\u06FF]{3,}")
PRODUCT = "Masque FFP2 Atlas-200"


def _arabic_words(text: str) -> list[str]:
    return ARABIC.findall(text)


# --- database rows ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    request_id: str
    number: str
    manufacturers: list[str]  # active manufacturers of the organisation
    others: list[str]  # users who must not receive manufacturer mail


def _user(email: str, roles: list[str], **fields: object) -> User:
    return User(
        email=email,
        full_name=email.split("@")[0],
        password_hash="not-a-hash",
        roles=roles,
        **fields,  # type: ignore[arg-type]
    )


def make_request(engine: Engine, *, centre_code: str | None = None, users: bool = True) -> Fixture:
    """An organisation, its users, a product and a request, inserted in one transaction."""
    tag = uuid.uuid4().hex[:10]
    with session_scope(engine) as session:
        scheme = session.exec(select(Scheme).where(Scheme.code == SCHEME_CODE)).first()
        assert scheme is not None and scheme.id is not None
        org = Organization(
            name=f"Textiles Atlas {tag}",
            registration_id=str(uuid.uuid4().int)[:15],
            address="Zone industrielle, Tanger",
            country="MA",
        )
        session.add(org)
        session.flush()
        product = Product(organization_id=org.id, name=PRODUCT, brand="Atlas", model="A-200")
        session.add(product)
        manufacturers = [f"qualite-{tag}@atlas.example", f"directeur-{tag}@atlas.example"]
        others = [f"ancien-{tag}@atlas.example", f"comptable-{tag}@atlas.example"]
        if users:
            session.add_all(
                [
                    _user(manufacturers[0], ["manufacturer"], organization_id=org.id),
                    _user(manufacturers[1], ["manufacturer", "admin"], organization_id=org.id),
                    _user(others[0], ["manufacturer"], organization_id=org.id, disabled=True),
                    _user(others[1], ["admin"], organization_id=org.id),
                ]
            )
        session.flush()
        request_id = uuid.uuid4().hex
        number = f"REQ-2026-{tag}"
        request = CertificationRequest(
            id=request_id,
            number=number,
            organization_id=org.id,
            product_id=product.id,
            scheme_id=scheme.id,
            scheme_code=scheme.code,
            scheme_version=scheme.version,
            kind=RequestKind.CERTIFICATION,
            scope="Demi-masque filtrant FFP2",
            status=RequestStatus.INFO_REQUESTED,
            centre_code=centre_code,
            workflow_id=f"request-{tag}",
            created_by="test",
        )
        session.add(request)
    return Fixture(request_id, number, sorted(manufacturers) if users else [], others)


def notify_input(fixture: Fixture, kind: NotificationKind, **fields: object) -> NotifyInput:
    values: dict[str, object] = {
        "request_id": fixture.request_id,
        "request_number": fixture.number,
        "kind": kind,
        "product_name": PRODUCT,
        "scheme_code": SCHEME_CODE,
        "dedupe_key": f"request-{fixture.request_id}:{uuid.uuid4().hex}",
    }
    values.update(fields)
    return NotifyInput.model_validate(values)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


def smtp_settings(settings: Settings, sink: SmtpSink) -> Settings:
    return settings.model_copy(update=sink.settings_update())


def run_notify(engine: Engine, settings: Settings, params: NotifyInput) -> NotifyResult:
    return ActivityEnvironment().run(NotificationActivities(engine, settings).notify, params)


# --- composition -----------------------------------------------------------------------------


def _sample(kind: NotificationKind, **fields: object) -> NotifyInput:
    values: dict[str, object] = {
        "request_id": "0123456789abcdef0123456789abcdef",
        "request_number": "REQ-2026-000123",
        "kind": kind,
        "product_name": PRODUCT,
        "scheme_code": SCHEME_CODE,
        "reason": "Le rapport de la fiche technique est illisible.",
        "message": "Merci de fournir la fiche technique du média filtrant.",
        "due_at": datetime(2026, 5, 31, 16, 0, tzinfo=UTC),
        "centre_code": "CTTH",
        "centre_name": "Centre technique du textile et de l'habillement",
        "centre_name_ar": "المركز التقني للنسيج والألبسة",
        "stage": "testing",
        "certificate_number": "MA-CTTH-2026-000001",
        "dedupe_key": "wf:1",
    }
    values.update(fields)
    return NotifyInput.model_validate(values)


@pytest.mark.parametrize("kind", list(NotificationKind))
def test_every_kind_has_a_bilingual_message(kind: NotificationKind) -> None:
    settings = Settings(public_base_url="https://mutabaqa.example.ma/")
    subject, body = compose(_sample(kind), settings)
    assert subject.startswith("[Mutabaqa] REQ-2026-000123 — ")
    assert _arabic_words(subject), subject
    assert "Demande : REQ-2026-000123" in body
    assert "رقم الطلب: REQ-2026-000123" in body
    assert f"Produit : {PRODUCT}" in body and f"Schéma de certification : {SCHEME_CODE}" in body
    assert "Ce qu'il faut faire : " in body and "ما يجب القيام به: " in body
    assert "https://mutabaqa.example.ma/requests/0123456789abcdef0123456789abcdef" in body
    assert len(_arabic_words(body)) > 15, body


def test_each_kind_has_its_own_subject() -> None:
    settings = Settings()
    subjects = {compose(_sample(kind), settings)[0] for kind in NotificationKind}
    assert len(subjects) == len(NotificationKind)


def test_information_request_carries_message_and_local_deadline() -> None:
    params = _sample(NotificationKind.INFO_REQUESTED, reason=None)
    subject, body = compose(params, Settings(timezone="Africa/Casablanca"))
    assert "Demande d'informations / طلب معلومات" in subject
    assert "Merci de fournir la fiche technique du média filtrant." in body
    # 16:00 UTC is 17:00 in Casablanca (UTC+1 outside Ramadan).
    assert "Date limite : 31/05/2026 17:00 (Africa/Casablanca)" in body
    assert "آخر أجل: 31/05/2026 17:00 (Africa/Casablanca)" in body
    assert "Motif" not in body


def test_decisions_give_the_reason_in_both_languages() -> None:
    for kind in (
        NotificationKind.DECLINED,
        NotificationKind.REFUSED,
        NotificationKind.SAMPLE_REJECTED,
    ):
        _, body = compose(_sample(kind, message=None), Settings())
        french, arabic = body.split("* * *")
        assert "Motif :" in french and "السبب:" in arabic
        assert "Le rapport de la fiche technique est illisible." in french
        assert "Le rapport de la fiche technique est illisible." in arabic


def test_accepted_and_rejected_sample_say_where_to_send_it() -> None:
    for kind in (NotificationKind.ACCEPTED, NotificationKind.SAMPLE_REJECTED):
        _, body = compose(_sample(kind), Settings())
        assert "Centre technique du textile et de l'habillement (CTTH)" in body
        assert "المركز التقني للنسيج والألبسة (CTTH)" in body


def test_refusal_states_the_appeal_deadline() -> None:
    _, body = compose(_sample(NotificationKind.REFUSED, due_at=None), Settings())
    assert "dans un délai de 30 jours" in body
    _, body = compose(_sample(NotificationKind.REFUSED), Settings())
    assert "jusqu'au 31/05/2026 17:00" in body


def test_escalation_names_the_stage() -> None:
    subject, body = compose(_sample(NotificationKind.ESCALATION, stage="testing"), Settings())
    assert "Délai dépassé — essais" in subject and "تجاوز الأجل — الاختبارات" in subject
    assert "Échéance cible : 31/05/2026 17:00" in body


def test_appeal_outcome_is_explicit() -> None:
    upheld = compose(
        _sample(NotificationKind.APPEAL_DECIDED, appeal_outcome=AppealOutcome.UPHELD), Settings()
    )
    overturned = compose(
        _sample(NotificationKind.APPEAL_DECIDED, appeal_outcome=AppealOutcome.OVERTURNED),
        Settings(),
    )
    assert "Appel rejeté" in upheld[0] and "définitive" in upheld[1]
    assert "Appel accueilli" in overturned[0] and "nouvelle décision" in overturned[1]


def test_certified_gives_the_certificate_number() -> None:
    _, body = compose(_sample(NotificationKind.CERTIFIED), Settings())
    assert "certificat n° MA-CTTH-2026-000001" in body
    assert "شهادة رقم MA-CTTH-2026-000001" in body


def test_a_reissue_is_announced_as_a_new_issue_of_the_same_number() -> None:
    reissued = compose(
        _sample(NotificationKind.CERTIFICATE_STATUS, stage="reissued", message=None),
        Settings(public_base_url="https://mutabaqa.example.ma/"),
    )
    suspended = compose(
        _sample(NotificationKind.CERTIFICATE_STATUS, stage="suspended", message=None), Settings()
    )
    subject, body = reissued
    assert "Certificat MA-CTTH-2026-000001 : nouvelle édition" in subject
    assert "الشهادة MA-CTTH-2026-000001: إصدار جديد" in subject
    assert "a été réédité" in body and "أُعيد إصدار الشهادة" in body
    assert "Motif :" in body and "السبب:" in body  # the officer's reason, in both halves
    assert "https://mutabaqa.example.ma/verify/MA-CTTH-2026-000001" in body
    assert subject != suspended[0]


def test_message_id_depends_only_on_the_dedupe_key() -> None:
    assert message_id_for("wf-1:7") == message_id_for("wf-1:7")
    assert message_id_for("wf-1:7") != message_id_for("wf-1:8")
    assert re.fullmatch(r"<[0-9a-f]{32}@mutabaqa>", message_id_for("wf-1:7"))


# --- sending, against PostgreSQL and a real SMTP server ---------------------------------------


def test_active_manufacturers_receive_the_information_request(
    engine: Engine, settings: Settings, sink: SmtpSink
) -> None:
    fixture = make_request(engine)
    params = notify_input(
        fixture,
        NotificationKind.INFO_REQUESTED,
        message="Merci de joindre la déclaration de conformité signée.",
        due_at=datetime(2026, 5, 31, 16, 0, tzinfo=UTC),
    )
    result = run_notify(engine, smtp_settings(settings, sink), params)

    assert result.sent is True
    assert result.recipients == fixture.manufacturers
    assert result.refused == []
    [mail] = sink.wait_for(lambda messages: len(messages) == 1)
    assert sorted(mail.rcpt_tos) == fixture.manufacturers
    for address in fixture.others:
        assert address not in mail.rcpt_tos
        assert address not in str(mail.message["To"])
    assert fixture.number in str(mail.message["Subject"])
    assert "طلب معلومات" in str(mail.message["Subject"])
    body = mail.body
    assert "Bonjour," in body and "السلام عليكم،" in body
    assert "Merci de joindre la déclaration de conformité signée." in body
    assert "31/05/2026 17:00" in body
    assert f"{settings.public_base_url}/requests/{fixture.request_id}" in body
    assert mail.message["Message-ID"] == result.message_id == message_id_for(params.dedupe_key)
    assert mail.message["Content-Language"] == "fr, ar"
    assert mail.message["Auto-Submitted"] == "auto-generated"


def test_a_repeated_notification_keeps_its_message_id(
    engine: Engine, settings: Settings, sink: SmtpSink
) -> None:
    fixture = make_request(engine)
    params = notify_input(fixture, NotificationKind.DECLINED, reason="Dossier hors du champ.")
    configured = smtp_settings(settings, sink)
    run_notify(engine, configured, params)
    run_notify(engine, configured, params)
    run_notify(engine, configured, params.model_copy(update={"dedupe_key": "another:1"}))

    first, second, third = sink.wait_for(lambda messages: len(messages) == 3)
    assert first.message["Message-ID"] == second.message["Message-ID"]
    assert third.message["Message-ID"] != first.message["Message-ID"]
    assert "Dossier hors du champ." in first.body
    # All notifications of one request thread together.
    assert first.message["References"] == third.message["References"]


def test_acceptance_names_the_centre_from_the_database(
    engine: Engine, settings: Settings, sink: SmtpSink
) -> None:
    fixture = make_request(engine, centre_code="CTTH")
    run_notify(
        engine, smtp_settings(settings, sink), notify_input(fixture, NotificationKind.ACCEPTED)
    )
    [mail] = sink.wait_for(lambda messages: len(messages) == 1)
    with session_scope(engine) as session:
        centre = session.get(TechnicalCentre, "CTTH")
        assert centre is not None
        names = (f"{centre.name} (CTTH)", f"{centre.name_ar} (CTTH)")
    assert names[0] in mail.body and names[1] in mail.body


def test_escalation_goes_to_staff_not_to_the_manufacturer(
    engine: Engine, settings: Settings, sink: SmtpSink
) -> None:
    fixture = make_request(engine, centre_code="CTTH")
    tag = uuid.uuid4().hex[:8]
    officer = f"officer-{tag}@body.example"
    technician = f"tech-ctth-{tag}@ctth.example"
    excluded = [
        f"officer-off-{tag}@body.example",
        f"tech-cetiev-{tag}@cetiev.example",
        f"tech-off-{tag}@ctth.example",
    ]
    with session_scope(engine) as session:
        session.add_all(
            [
                _user(officer, ["compliance_officer"]),
                _user(technician, ["lab_technician"], centre_code="CTTH"),
                _user(excluded[0], ["compliance_officer"], disabled=True),
                _user(excluded[1], ["lab_technician"], centre_code="CETIEV"),
                _user(excluded[2], ["lab_technician"], centre_code="CTTH", disabled=True),
            ]
        )
    params = notify_input(
        fixture,
        NotificationKind.ESCALATION,
        stage="testing",
        due_at=datetime(2026, 6, 1, 8, 0, tzinfo=UTC),
    )
    result = run_notify(engine, smtp_settings(settings, sink), params)

    [mail] = sink.wait_for(lambda messages: len(messages) == 1)
    assert officer in mail.rcpt_tos and technician in mail.rcpt_tos
    for address in [*excluded, *fixture.manufacturers]:
        assert address not in mail.rcpt_tos
    # Everyone else notified is an active officer or an active technician of CTTH.
    with session_scope(engine) as session:
        for address in mail.rcpt_tos:
            user = session.exec(select(User).where(User.email == address)).one()
            assert not user.disabled
            assert "compliance_officer" in user.roles or (
                "lab_technician" in user.roles and user.centre_code == "CTTH"
            )
    assert sorted(mail.rcpt_tos) == result.recipients
    assert "Délai dépassé — essais" in str(mail.message["Subject"])


def test_without_smtp_host_nothing_is_sent(
    engine: Engine, settings: Settings, sink: SmtpSink
) -> None:
    fixture = make_request(engine)
    unconfigured = settings.model_copy(update={"smtp_host": None, "smtp_port": sink.port})
    result = run_notify(engine, unconfigured, notify_input(fixture, NotificationKind.LAPSED))
    assert result.sent is False
    assert result.recipients == fixture.manufacturers  # who would have been told
    assert sink.messages == []


def test_nobody_to_notify_sends_nothing(engine: Engine, settings: Settings, sink: SmtpSink) -> None:
    fixture = make_request(engine, users=False)
    result = run_notify(
        engine, smtp_settings(settings, sink), notify_input(fixture, NotificationKind.WITHDRAWN)
    )
    assert result.sent is False and result.recipients == []
    assert sink.messages == []


def test_unreachable_server_raises_a_retryable_error(engine: Engine, settings: Settings) -> None:
    fixture = make_request(engine)
    down = settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_timeout_seconds": 2.0}
    )
    with pytest.raises(ApplicationError) as caught:
        run_notify(engine, down, notify_input(fixture, NotificationKind.DECLINED, reason="x"))
    assert caught.value.type == SMTP_UNAVAILABLE
    assert caught.value.non_retryable is False


def test_permanent_refusal_of_every_recipient_is_not_retried(
    engine: Engine, settings: Settings
) -> None:
    fixture = make_request(engine)
    with SmtpSink(refuse=set(fixture.manufacturers)) as sink:
        with pytest.raises(ApplicationError) as caught:
            run_notify(
                engine,
                smtp_settings(settings, sink),
                notify_input(fixture, NotificationKind.LAPSED),
            )
        assert sink.messages == []
    assert caught.value.type == SMTP_REJECTED
    assert caught.value.non_retryable is True
    assert "550" in str(caught.value)


def test_partial_refusal_delivers_to_the_others_once(engine: Engine, settings: Settings) -> None:
    fixture = make_request(engine)
    refused, accepted = fixture.manufacturers
    with SmtpSink(refuse={refused}) as sink:
        result = run_notify(
            engine, smtp_settings(settings, sink), notify_input(fixture, NotificationKind.LAPSED)
        )
        [mail] = sink.wait_for(lambda messages: len(messages) == 1)
    assert result.sent is True
    assert result.recipients == [accepted] and result.refused == [refused]
    assert mail.rcpt_tos == [accepted]


@pytest.fixture(scope="module")
def smtp_pki(tmp_path_factory: pytest.TempPathFactory) -> ServerPki:
    """A certificate for the sink's address (127.0.0.1), from a CA of the test's own."""
    return make_pki(tmp_path_factory.mktemp("smtp-pki"), [], ("127.0.0.1",))


def test_login_over_starttls_when_credentials_are_configured(
    engine: Engine, settings: Settings, smtp_pki: ServerPki
) -> None:
    fixture = make_request(engine)
    with SmtpSink(credentials=("mutabaqa", "s3cret-pass"), tls=smtp_pki) as sink:
        configured = smtp_settings(settings, sink)
        assert configured.smtp_starttls and configured.smtp_ca_file == smtp_pki.ca_file
        result = run_notify(engine, configured, notify_input(fixture, NotificationKind.VERIFIED))
        assert result.sent is True
        sink.wait_for(lambda messages: len(messages) == 1)

        wrong = configured.model_copy(update={"smtp_username": "intruder"})
        with pytest.raises(ApplicationError) as caught:
            run_notify(engine, wrong, notify_input(fixture, NotificationKind.VERIFIED))
        assert caught.value.non_retryable is False
        assert "MUTABAQA_SMTP_PASSWORD" in str(caught.value)
        assert len(sink.messages) == 1
    assert sink.logins[0] == "mutabaqa" and set(sink.logins) == {"mutabaqa", "intruder"}


def test_a_login_without_tls_is_refused_by_the_settings() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(smtp_host="mail.example.ma", smtp_username="mutabaqa")
    assert "MUTABAQA_SMTP_STARTTLS" in str(caught.value)
    assert load_settings(smtp_host="mail.example.ma", smtp_username="u", smtp_starttls=True)
    assert load_settings(smtp_host="mail.example.ma", smtp_username="u", smtp_port=465)
    assert load_settings(smtp_host="mail.example.ma")  # no login: plain SMTP is allowed


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_no_credentials_are_sent_in_clear_even_to_a_server_that_accepts_them(
    engine: Engine, settings: Settings
) -> None:
    """Settings that skipped validation (copied with a user name, no TLS): the activity
    refuses before connecting, although this server would take the login in clear."""
    fixture = make_request(engine)
    with SmtpSink(credentials=("mutabaqa", "s3cret-pass")) as sink:
        insecure = smtp_settings(settings, sink)
        assert not insecure.smtp_tls
        with pytest.raises(ApplicationError) as caught:
            run_notify(engine, insecure, notify_input(fixture, NotificationKind.VERIFIED))
    assert caught.value.type == SMTP_MISCONFIGURED
    assert caught.value.non_retryable is True
    assert sink.logins == [] and sink.messages == []


def test_an_unverifiable_server_certificate_stops_before_the_login(
    engine: Engine, settings: Settings, smtp_pki: ServerPki
) -> None:
    fixture = make_request(engine)
    with SmtpSink(credentials=("mutabaqa", "s3cret-pass"), tls=smtp_pki) as sink:
        untrusted = smtp_settings(settings, sink).model_copy(update={"smtp_ca_file": None})
        with pytest.raises(ApplicationError) as caught:
            run_notify(engine, untrusted, notify_input(fixture, NotificationKind.VERIFIED))
    assert caught.value.type == SMTP_UNAVAILABLE and caught.value.non_retryable is False
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert sink.logins == [] and sink.messages == []


def test_a_server_without_starttls_gets_no_login(engine: Engine, settings: Settings) -> None:
    fixture = make_request(engine)
    with SmtpSink(credentials=("mutabaqa", "s3cret-pass")) as sink:  # offers no STARTTLS
        wants_tls = smtp_settings(settings, sink).model_copy(update={"smtp_starttls": True})
        with pytest.raises(ApplicationError) as caught:
            run_notify(engine, wants_tls, notify_input(fixture, NotificationKind.VERIFIED))
    assert caught.value.type == SMTP_UNAVAILABLE
    assert sink.logins == [] and sink.messages == []


def test_unknown_request_is_not_retried(engine: Engine, settings: Settings) -> None:
    ghost = Fixture(uuid.uuid4().hex, "REQ-2026-999999", [], [])
    with pytest.raises(ApplicationError) as caught:
        run_notify(engine, settings, notify_input(ghost, NotificationKind.LAPSED))
    assert caught.value.non_retryable is True


# --- through Temporal: retried until the server comes up --------------------------------------


@workflow.defn(name="NotifyProbe", sandboxed=False)
class NotifyProbeWorkflow:
    @workflow.run
    async def run(self, params: NotifyInput) -> NotifyResult:
        return await workflow.execute_activity_method(
            NotificationActivities.notify,
            params,
            start_to_close_timeout=NOTIFY_START_TO_CLOSE,
            # As the outbox delivers a mail (its default policy, shorter first intervals).
            retry_policy=delivery_retry(
                DeliveryPolicy(initial_interval=1.0, maximum_interval=5.0), EffectKind.EMAIL
            ),
        )


@pytest.mark.timers
async def test_temporal_retries_until_the_smtp_server_answers(
    engine: Engine, settings: Settings, task_queue: str
) -> None:
    fixture = make_request(engine)
    sink = SmtpSink()  # its port is chosen, but nothing listens yet
    configured = smtp_settings(settings, sink)
    activities = NotificationActivities(engine, configured)
    client = await connect_temporal(settings)
    workflow_id = f"notify-probe-{uuid.uuid4().hex}"
    params = notify_input(
        fixture, NotificationKind.SAMPLE_REJECTED, reason="Emballage ouvert à réception."
    )
    params = params.model_copy(update={"dedupe_key": f"{workflow_id}:1"})
    try:
        with ThreadPoolExecutor(4) as executor:
            async with Worker(
                client,
                task_queue=task_queue,
                workflows=[NotifyProbeWorkflow],
                activities=[activities.notify],
                activity_executor=executor,
            ):
                handle = await client.start_workflow(
                    NotifyProbeWorkflow.run,
                    params,
                    id=workflow_id,
                    task_queue=task_queue,
                    execution_timeout=timedelta(seconds=60),
                )
                await asyncio.sleep(2.0)
                assert sink.messages == []
                await asyncio.to_thread(sink.start)
                result = await asyncio.wait_for(handle.result(), timeout=30)
                await asyncio.sleep(1.0)  # a stray extra attempt would have landed by now

                started = [
                    event.activity_task_started_event_attributes
                    async for event in handle.fetch_history_events()
                    if event.HasField("activity_task_started_event_attributes")
                ]
    finally:
        await asyncio.to_thread(sink.stop)

    assert isinstance(result, NotifyResult) and result.sent is True
    assert result.recipients == fixture.manufacturers
    [mail] = sink.messages  # exactly one message, despite the failed attempts
    assert mail.message["Message-ID"] == message_id_for(f"{workflow_id}:1")
    assert "Emballage ouvert à réception." in mail.body
    [attempt] = started
    assert attempt.attempt >= 2, "the first attempt should have found no server"
    # Failure messages are encrypted in history (the payload codec): decode as a client does.
    failure = await client.data_converter.decode_failure(attempt.last_failure)
    assert "unavailable" in str(failure)
