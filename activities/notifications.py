"""E-mail notifications over SMTP: who is told, what the message says, and sending it.

``notify`` is an activity so that a slow or absent mail server never blocks a request's
action: the workflow starts it and moves on, and Temporal retries it with back-off
(``NOTIFY_RETRY_POLICY``) until the server takes the message. Every attempt for one
notification carries the same ``Message-ID`` (derived from ``dedupe_key``), so a receiver
can drop the copy left by an attempt that delivered but failed before reporting success.

Errors: a server that cannot be reached, a temporary (4xx) answer or a failed login raise a
retryable ``ApplicationError`` (an operator's fix lets the next attempt through); a
permanent (5xx) refusal of the sender, of every recipient or of the message itself raises a
non-retryable one, since resending the same message cannot succeed.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from domain.permissions import Role
from models.accounts import User
from models.notifications import (
    AppealOutcome,
    NotificationKind,
    NotifyInput,
    NotifyResult,
)
from models.reference import TechnicalCentre
from models.requests import CertificationRequest
from mutabaqa.settings import Settings

#: Retry until the mail server takes the message: 1 s, 2 s, 4 s … at most every 10 minutes.
NOTIFY_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=0,  # unlimited
)
#: One attempt (connect, log in, send) may take this long; smtp_timeout_seconds bounds each step.
NOTIFY_START_TO_CLOSE = timedelta(seconds=60)

# Error types (``ApplicationError.type``).
SMTP_UNAVAILABLE = "SmtpUnavailable"  # retryable: connection, 4xx answer, login, TLS
SMTP_REJECTED = "SmtpRejected"  # non-retryable: 5xx refusal of sender, recipients or message
NOTIFY_REQUEST_UNKNOWN = "NotifyRequestUnknown"  # non-retryable: no such request row

#: Port of SMTP over implicit TLS (RFC 8314); other ports speak plain SMTP, with STARTTLS
#: when ``smtp_starttls`` is set.
IMPLICIT_TLS_PORT = 465

MESSAGE_ID_DOMAIN = "mutabaqa"


def message_id_for(dedupe_key: str) -> str:
    """The deterministic ``Message-ID`` of a notification: the same on every retry."""
    return f"<{hashlib.sha256(dedupe_key.encode('utf-8')).hexdigest()[:32]}@{MESSAGE_ID_DOMAIN}>"


def thread_id_for(request_id: str) -> str:
    """A ``References`` id shared by every notification of one request (mail clients thread)."""
    digest = hashlib.sha256(f"request:{request_id}".encode()).hexdigest()[:32]
    return f"<{digest}@{MESSAGE_ID_DOMAIN}>"


def request_link(settings: Settings, request_id: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/requests/{request_id}"


# --- composition (pure) ----------------------------------------------------------------------

#: Stage names (request statuses and target names) in French and Arabic.
STAGE_LABELS: dict[str, tuple[str, str]] = {
    "submitted": ("contrôle de recevabilité", "فحص قبول الملف"),
    "application_review": ("examen de la demande", "دراسة الطلب"),
    "info_requested": ("attente d'informations", "انتظار المعلومات"),
    "awaiting_sample": ("réception de l'échantillon", "استلام العينة"),
    "sample_receipt": ("réception de l'échantillon", "استلام العينة"),
    "testing": ("essais", "الاختبارات"),
    "results_submitted": ("vérification des résultats", "التحقق من النتائج"),
    "evaluated": ("décision", "اتخاذ القرار"),
    "decision": ("décision", "اتخاذ القرار"),
    "under_appeal": ("examen de l'appel", "دراسة الطعن"),
}


@dataclass(frozen=True)
class _Texts:
    title_fr: str
    title_ar: str
    what_fr: str
    what_ar: str
    next_fr: str
    next_ar: str


def format_when(moment: datetime, settings: Settings) -> str:
    """``31/05/2026 17:00 (Africa/Casablanca)``: the business time zone, digits for both
    languages (as Moroccan administrations write dates)."""
    try:
        zone = ZoneInfo(settings.timezone)
        zone_name = settings.timezone
    except (ZoneInfoNotFoundError, ValueError):
        zone, zone_name = ZoneInfo("UTC"), "UTC"
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return f"{aware.astimezone(zone):%d/%m/%Y %H:%M} ({zone_name})"


def _centre_labels(params: NotifyInput) -> tuple[str, str]:
    code = params.centre_code or "?"
    fr = f"{params.centre_name} ({code})" if params.centre_name else code
    ar = f"{params.centre_name_ar} ({code})" if params.centre_name_ar else fr
    return fr, ar


def _texts(params: NotifyInput, settings: Settings) -> _Texts:
    kind = params.kind
    centre_fr, centre_ar = _centre_labels(params)
    respond_fr = (
        "Répondez depuis votre espace Mutabaqa (action « Répondre »), en ajoutant au besoin "
        "des documents. Sans réponse à la date limite, la demande devient caduque."
    )
    respond_ar = (
        "يرجى الرد من خلال فضائكم في منصة مطابقة، مع إضافة الوثائق عند الاقتضاء. "
        "في غياب رد قبل آخر أجل، يسقط الطلب."
    )
    if kind is NotificationKind.INFO_REQUESTED:
        return _Texts(
            "Demande d'informations",
            "طلب معلومات",
            "L'organisme de certification vous demande des informations complémentaires "
            "sur votre demande.",
            "تطلب منكم هيئة الإشهاد معلومات إضافية بخصوص طلبكم.",
            respond_fr,
            respond_ar,
        )
    if kind is NotificationKind.INFO_REMINDER:
        return _Texts(
            "Rappel : informations attendues",
            "تذكير: معلومات منتظرة",
            "Nous n'avons pas encore reçu votre réponse à la demande d'informations.",
            "لم نتوصل بعد بردكم على طلب المعلومات.",
            respond_fr,
            respond_ar,
        )
    if kind is NotificationKind.LAPSED:
        return _Texts(
            "Demande caduque",
            "سقوط الطلب",
            "Faute de réponse dans le délai imparti, votre demande est close (caduque).",
            "نظرا لعدم الرد داخل الأجل المحدد، تم إغلاق طلبكم.",
            "Pour poursuivre, déposez une nouvelle demande.",
            "لمتابعة الإجراء، يرجى تقديم طلب جديد.",
        )
    if kind is NotificationKind.DECLINED:
        return _Texts(
            "Demande non recevable",
            "عدم قبول الطلب",
            "Après examen du dossier, l'organisme de certification ne donne pas suite à votre "
            "demande.",
            "بعد دراسة الملف، قررت هيئة الإشهاد عدم قبول طلبكم.",
            "Vous pouvez déposer une nouvelle demande une fois le motif ci-dessus traité.",
            "يمكنكم تقديم طلب جديد بعد معالجة السبب المذكور أعلاه.",
        )
    if kind is NotificationKind.ACCEPTED:
        return _Texts(
            "Demande acceptée — envoi de l'échantillon",
            "قبول الطلب — إرسال العينة",
            f"Votre demande est acceptée. Les essais seront réalisés par le centre technique "
            f"{centre_fr}.",
            f"تم قبول طلبكم. ستُجرى الاختبارات لدى المركز التقني {centre_ar}.",
            f"Envoyez l'échantillon au centre technique {centre_fr}, en indiquant le numéro "
            f"de la demande.",
            f"يرجى إرسال العينة إلى المركز التقني {centre_ar} مع الإشارة إلى رقم الطلب.",
        )
    if kind is NotificationKind.SAMPLE_REJECTED:
        return _Texts(
            "Échantillon refusé — nouvel envoi nécessaire",
            "رفض العينة — يلزم إرسال عينة جديدة",
            f"Le centre technique {centre_fr} n'a pas accepté l'échantillon reçu.",
            f"لم يقبل المركز التقني {centre_ar} العينة التي توصل بها.",
            f"Envoyez un nouvel échantillon au centre technique {centre_fr}, en indiquant le "
            f"numéro de la demande.",
            f"يرجى إرسال عينة جديدة إلى المركز التقني {centre_ar} مع الإشارة إلى رقم الطلب.",
        )
    if kind is NotificationKind.WITHDRAWN:
        return _Texts(
            "Demande retirée",
            "سحب الطلب",
            "Votre demande a été retirée ; elle est close.",
            "تم سحب طلبكم، وقد أُغلق.",
            "Aucune action n'est requise de votre part.",
            "لا يلزمكم أي إجراء.",
        )
    if kind is NotificationKind.ESCALATION:
        stage = params.stage or "?"
        stage_fr, stage_ar = STAGE_LABELS.get(stage, (stage, stage))
        return _Texts(
            f"Délai dépassé — {stage_fr}",
            f"تجاوز الأجل — {stage_ar}",
            f"L'étape « {stage_fr} » de cette demande a dépassé son délai cible.",
            f"تجاوزت مرحلة « {stage_ar} » من هذا الطلب أجلها المستهدف.",
            "Prenez la demande en charge ou réaffectez-la ; son état n'a pas changé.",
            "يرجى التكفل بالطلب أو إعادة إسناده؛ لم تتغير حالته.",
        )
    if kind is NotificationKind.CERTIFIED:
        number_fr = f" (certificat n° {params.certificate_number})"
        number_ar = f" (شهادة رقم {params.certificate_number})"
        has_number = params.certificate_number is not None
        return _Texts(
            "Certification accordée",
            "منح شهادة المطابقة",
            "L'organisme de certification a accordé la certification"
            + (number_fr if has_number else "")
            + ".",
            "منحت هيئة الإشهاد شهادة المطابقة" + (number_ar if has_number else "") + ".",
            "Le certificat signé est disponible dans votre espace ; toute personne peut le "
            "vérifier en ligne.",
            "الشهادة الموقعة متاحة في فضائكم، ويمكن لأي شخص التحقق منها عبر الإنترنت.",
        )
    if kind is NotificationKind.VERIFIED:
        return _Texts(
            "Vérification de sécurité concluante",
            "نتيجة إيجابية للتحقق من السلامة",
            "La vérification de sécurité du produit est concluante ; le rapport d'essai signé "
            "est émis.",
            "التحقق من سلامة المنتوج إيجابي، وتم إصدار تقرير الاختبار الموقع.",
            "Le rapport d'essai signé est disponible dans votre espace.",
            "تقرير الاختبار الموقع متاح في فضائكم.",
        )
    if kind is NotificationKind.REFUSED:
        if params.due_at is not None:
            until = format_when(params.due_at, settings)
            appeal_fr = f"jusqu'au {until}"
            appeal_ar = f"إلى غاية {until}"
        else:
            days = round(settings.appeal_window_seconds / 86400)
            appeal_fr = f"dans un délai de {days} jours"
            appeal_ar = f"داخل أجل {days} يوما"
        return _Texts(
            "Certification refusée",
            "رفض الإشهاد",
            "Après évaluation des résultats d'essai, l'organisme de certification refuse la "
            "demande.",
            "بعد تقييم نتائج الاختبارات، قررت هيئة الإشهاد رفض الطلب.",
            f"Vous pouvez faire appel de cette décision {appeal_fr}, motif à l'appui, depuis "
            f"votre espace (action « Faire appel »).",
            f"يمكنكم الطعن في هذا القرار {appeal_ar} مع بيان الأسباب، من خلال فضائكم.",
        )
    if kind is NotificationKind.RETEST_REQUESTED:
        return _Texts(
            "Nouveaux essais demandés",
            "طلب إعادة الاختبارات",
            "L'organisme de certification a demandé de reprendre certains essais.",
            "طلبت هيئة الإشهاد إعادة بعض الاختبارات.",
            "Le centre technique reprend les essais ; aucune action n'est requise de votre "
            "part pour l'instant.",
            "سيعيد المركز التقني الاختبارات؛ لا يلزمكم أي إجراء في الوقت الحالي.",
        )
    if kind is NotificationKind.APPEAL_DECIDED:
        if params.appeal_outcome is AppealOutcome.UPHELD:
            return _Texts(
                "Appel rejeté",
                "رفض الطعن",
                "Votre appel est rejeté : le refus de certification est confirmé.",
                "تم رفض طعنكم: تأكيد قرار رفض الإشهاد.",
                "Cette décision est définitive.",
                "هذا القرار نهائي.",
            )
        if params.appeal_outcome is AppealOutcome.OVERTURNED:
            return _Texts(
                "Appel accueilli",
                "قبول الطعن",
                "Votre appel est accueilli : le refus est annulé et une nouvelle décision sera "
                "prise par un autre responsable.",
                "تم قبول طعنكم: أُلغي قرار الرفض وسيتخذ مسؤول آخر قرارا جديدا.",
                "Vous serez informé de la nouvelle décision.",
                "سيتم إخباركم بالقرار الجديد.",
            )
        return _Texts(
            "Décision sur votre appel",
            "قرار بشأن طعنكم",
            "Une décision a été prise sur votre appel.",
            "تم البت في طعنكم.",
            "Consultez le détail de la décision dans votre espace.",
            "يرجى الاطلاع على تفاصيل القرار في فضائكم.",
        )
    if kind is NotificationKind.CERTIFICATE_STATUS:
        status = params.stage or "?"
        status_fr, status_ar = CERTIFICATE_STATUS_LABELS.get(status, (status, status))
        number = params.certificate_number or "?"
        verify = f"{settings.public_base_url.rstrip('/')}/verify/{number}"
        return _Texts(
            f"Certificat {number} : {status_fr}",
            f"الشهادة {number}: {status_ar}",
            f"Le statut du certificat n° {number} est désormais : {status_fr}.",
            f"أصبحت حالة الشهادة رقم {number}: {status_ar}.",
            f"Le statut public est consultable à l'adresse {verify}.",
            f"يمكن الاطلاع على الحالة العمومية عبر الرابط {verify}.",
        )
    raise ValueError(f"no e-mail text for notification kind {kind!r}")


CERTIFICATE_STATUS_LABELS = {
    "active": ("actif", "سارية"),
    "suspended": ("suspendu", "معلقة"),
    "withdrawn": ("retiré", "مسحوبة"),
    "expired": ("expiré", "منتهية الصلاحية"),
    "superseded": ("remplacé par une nouvelle édition", "مستبدلة بإصدار جديد"),
    "terminated": ("résilié à la demande du titulaire", "منهاة بطلب من الحامل"),
}


def _indented(text: str) -> list[str]:
    return ["    " + line if line else "" for line in text.strip().splitlines()]


def compose(params: NotifyInput, settings: Settings) -> tuple[str, str]:
    """The subject and plain-text body (French, then Arabic) of one notification."""
    texts = _texts(params, settings)
    number = params.request_number
    subject = f"[Mutabaqa] {number} — {texts.title_fr} / {texts.title_ar}"
    link = request_link(settings, params.request_id)
    due = format_when(params.due_at, settings) if params.due_at is not None else None
    due_label_fr, due_label_ar = (
        ("Échéance cible", "الأجل المستهدف")
        if params.kind is NotificationKind.ESCALATION
        else ("Date limite", "آخر أجل")
    )
    refused_appeal = params.kind is NotificationKind.REFUSED  # the date is in "next" already

    fr = [
        "Bonjour,",
        "",
        texts.what_fr,
        "",
        f"Demande : {number}",
        f"Produit : {params.product_name}",
        f"Schéma de certification : {params.scheme_code}",
    ]
    ar = [
        "السلام عليكم،",
        "",
        texts.what_ar,
        "",
        f"رقم الطلب: {number}",
        f"المنتوج: {params.product_name}",
        f"مخطط الإشهاد: {params.scheme_code}",
    ]
    if params.reason:
        fr += ["Motif :", *_indented(params.reason)]
        ar += ["السبب:", *_indented(params.reason)]
    if params.message:
        fr += ["Message :", *_indented(params.message)]
        ar += ["الرسالة:", *_indented(params.message)]
    if due is not None and not refused_appeal:
        fr.append(f"{due_label_fr} : {due}")
        ar.append(f"{due_label_ar}: {due}")
    fr += ["", f"Ce qu'il faut faire : {texts.next_fr}", "", f"Suivre la demande : {link}"]
    ar += ["", f"ما يجب القيام به: {texts.next_ar}", "", f"تتبع الطلب: {link}"]
    footer = [
        "-- ",  # the signature separator
        f"Mutabaqa — {settings.body_name} / {settings.body_name_ar}",
        "Message envoyé automatiquement ; merci de ne pas y répondre.",
        "رسالة آلية، يرجى عدم الرد عليها.",
    ]
    body = "\n".join([*fr, "", "* * *", "", *ar, "", *footer]) + "\n"
    return subject, body


def build_message(
    params: NotifyInput, settings: Settings, recipients: list[str], *, now: datetime
) -> EmailMessage:
    subject, body = compose(params, settings)
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id_for(params.dedupe_key)
    msg["References"] = thread_id_for(params.request_id)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    msg["X-Mutabaqa-Request"] = params.request_number
    msg["X-Mutabaqa-Notification"] = params.kind.value
    msg.set_content(body)  # replaces any Content-* header set before it
    msg["Content-Language"] = "fr, ar"
    return msg


# --- sending -------------------------------------------------------------------------------


def _open_smtp(settings: Settings) -> smtplib.SMTP:
    host = settings.smtp_host or ""
    timeout = settings.smtp_timeout_seconds
    if settings.smtp_port == IMPLICIT_TLS_PORT:
        return smtplib.SMTP_SSL(
            host, settings.smtp_port, timeout=timeout, context=ssl.create_default_context()
        )
    smtp = smtplib.SMTP(host, settings.smtp_port, timeout=timeout)
    try:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
    except BaseException:
        smtp.close()
        raise
    return smtp


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    """End the session; once the message is sent, a failing QUIT must not fail the attempt
    (a retry would deliver it twice)."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _as_text(reply: object) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _refusal(what: str, code: int, reply: object) -> ApplicationError:
    return ApplicationError(
        f"SMTP server refused {what}: {code} {_as_text(reply)}",
        type=SMTP_REJECTED if code >= 500 else SMTP_UNAVAILABLE,
        non_retryable=code >= 500,
    )


def send_message(settings: Settings, msg: EmailMessage, recipients: list[str]) -> list[str]:
    """Send ``msg`` to ``recipients`` in one SMTP transaction; return the refused addresses.

    Raises a retryable ``ApplicationError`` when the server is unreachable or answers with
    a temporary error, a non-retryable one when it refuses the message for good.
    """
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    envelope_from = parseaddr(settings.smtp_from)[1] or settings.smtp_from
    try:
        smtp = _open_smtp(settings)
        try:
            if settings.smtp_username:
                secret = settings.smtp_password
                smtp.login(settings.smtp_username, secret.get_secret_value() if secret else "")
            refused = smtp.send_message(msg, from_addr=envelope_from, to_addrs=recipients)
        finally:
            _quit_quietly(smtp)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        permanent = all(code >= 500 for code in codes)
        listing = "; ".join(
            f"{addr}: {code} {_as_text(reply)}" for addr, (code, reply) in exc.recipients.items()
        )
        raise ApplicationError(
            f"SMTP server {where} refused every recipient: {listing}",
            type=SMTP_REJECTED if permanent else SMTP_UNAVAILABLE,
            non_retryable=permanent,
        ) from exc
    except smtplib.SMTPSenderRefused as exc:
        raise _refusal(f"the sender {exc.sender}", exc.smtp_code, exc.smtp_error) from exc
    except smtplib.SMTPDataError as exc:
        raise _refusal("the message", exc.smtp_code, exc.smtp_error) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise ApplicationError(
            f"SMTP login to {where} as {settings.smtp_username!r} failed: {exc.smtp_code} "
            f"{_as_text(exc.smtp_error)} (check MUTABAQA_SMTP_USERNAME and "
            "MUTABAQA_SMTP_PASSWORD)",
            type=SMTP_UNAVAILABLE,
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise ApplicationError(
            f"SMTP server {where} unavailable: {type(exc).__name__}: {exc}",
            type=SMTP_UNAVAILABLE,
        ) from exc
    return sorted(refused)


# --- recipients ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _RequestFacts:
    organization_id: str
    centre_code: str | None


def _active_with_role(users: list[User], role: Role) -> list[str]:
    return [user.email for user in users if not user.disabled and role.value in user.roles]


def _find_recipients(session: Session, params: NotifyInput, facts: _RequestFacts) -> list[str]:
    """Manufacturer-facing kinds: the organisation's active manufacturers. ``escalation``:
    active compliance officers and, when the request has a centre, its active technicians."""
    if params.kind is NotificationKind.ESCALATION:
        # Roles live in a JSON list (portable between SQLite and PostgreSQL): filter here.
        staff = list(session.exec(select(User).where(col(User.disabled).is_(False))).all())
        emails = _active_with_role(staff, Role.COMPLIANCE_OFFICER)
        centre = facts.centre_code or params.centre_code
        if centre is not None:
            emails += _active_with_role(
                [user for user in staff if user.centre_code == centre], Role.LAB_TECHNICIAN
            )
    else:
        members = session.exec(
            select(User).where(User.organization_id == facts.organization_id)
        ).all()
        emails = _active_with_role(list(members), Role.MANUFACTURER)
    return sorted(set(emails))


class NotificationActivities:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    def _prepare(self, params: NotifyInput) -> tuple[NotifyInput, list[str]]:
        """Recipients from the database, and the centre's names filled in."""
        with Session(self._engine) as session:
            request = session.get(CertificationRequest, params.request_id)
            if request is None:
                raise ApplicationError(
                    f"notification {params.kind.value} for unknown request {params.request_id}",
                    type=NOTIFY_REQUEST_UNKNOWN,
                    non_retryable=True,
                )
            facts = _RequestFacts(request.organization_id, request.centre_code)
            recipients = _find_recipients(session, params, facts)
            centre_code = params.centre_code or request.centre_code
            if centre_code is not None and params.centre_name is None:
                centre = session.get(TechnicalCentre, centre_code)
                params = params.model_copy(
                    update={
                        "centre_code": centre_code,
                        "centre_name": centre.name if centre else None,
                        "centre_name_ar": centre.name_ar if centre else None,
                    }
                )
        return params, recipients

    @activity.defn(name="notify")
    def notify(self, params: NotifyInput) -> NotifyResult:
        """Tell the people concerned by e-mail; see the module docstring for retries."""
        message_id = message_id_for(params.dedupe_key)
        params, recipients = self._prepare(params)
        log = activity.logger
        if not recipients:
            log.warning(
                "notification %s for %s: nobody to notify", params.kind.value, params.request_number
            )
            return NotifyResult(recipients=[], message_id=message_id, sent=False)
        if self._settings.smtp_host is None:
            log.info(
                "SMTP not configured (MUTABAQA_SMTP_HOST): notification %s for %s to %s not sent",
                params.kind.value,
                params.request_number,
                ", ".join(recipients),
            )
            return NotifyResult(recipients=recipients, message_id=message_id, sent=False)
        msg = build_message(params, self._settings, recipients, now=datetime.now(UTC))
        refused = send_message(self._settings, msg, recipients)
        delivered = [address for address in recipients if address not in refused]
        if refused:
            log.warning(
                "notification %s for %s: server refused %s",
                params.kind.value,
                params.request_number,
                ", ".join(refused),
            )
        log.info(
            "notification %s for %s sent to %s (%s)",
            params.kind.value,
            params.request_number,
            ", ".join(delivered),
            message_id,
        )
        return NotifyResult(recipients=delivered, message_id=message_id, sent=True, refused=refused)
