"""The words of the public verification pages, in Arabic, French and English.

One ``Language`` per section of the page, in the order shown (Arabic first). Every
certificate status has a word and a one-line meaning in each language, and a colour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from models.lab import CertificateStatus


@dataclass(frozen=True)
class Language:
    code: str
    dir: str  # "rtl" or "ltr"
    name: str
    labels: Mapping[str, str]
    status: Mapping[str, str]
    meaning: Mapping[str, str]


@dataclass(frozen=True)
class StatusStyle:
    colour: str  # text and border
    background: str


S = CertificateStatus

ARABIC = Language(
    code="ar",
    dir="rtl",
    name="العربية",
    labels={
        "title": "التحقق من الشهادة",
        "comma": "، ",
        "body": "هيئة الإشهاد",
        "number": "رقم الشهادة",
        "issue": "رقم الإصدار",
        "latest": "أحدث إصدار",
        "status": "الحالة",
        "since": "منذ",
        "holder": "حامل الشهادة",
        "country": "البلد",
        "product": "المنتج",
        "brand": "العلامة التجارية",
        "model": "الطراز",
        "scheme": "نظام الإشهاد",
        "version": "الصيغة",
        "standards": "المواصفات القياسية",
        "edition": "الطبعة",
        "scope": "مجال الإشهاد",
        "issued_on": "تاريخ الإصدار",
        "valid_until": "صالحة إلى غاية",
        "key_id": "معرف مفتاح التوقيع",
        "unsigned": "في انتظار التوقيع",
        "offline": "يمكن التحقق من توقيع ملف PDF الخاص بالشهادة دون اتصال بالإنترنت بالأمر:",
        "public_keys": "المفاتيح العمومية للتوقيع:",
        "not_found": "الشهادة غير موجودة",
        "not_found_detail": "لا توجد أي شهادة بهذا الرقم. تحقق من الرقم المطبوع على الشهادة؛"
        " إن لم تكن الشهادة مسجلة هنا فهي غير صالحة.",
    },
    status={
        S.ACTIVE: "سارية",
        S.SUSPENDED: "معلقة",
        S.WITHDRAWN: "مسحوبة",
        S.EXPIRED: "منتهية الصلاحية",
        S.SUPERSEDED: "مستبدلة",
        S.TERMINATED: "ملغاة",
    },
    meaning={
        S.ACTIVE: "الشهادة سارية المفعول.",
        S.SUSPENDED: "الشهادة معلقة مؤقتا ولا يجوز الاستناد إليها طوال مدة التعليق.",
        S.WITHDRAWN: "سحبت الشهادة ولم تعد صالحة.",
        S.EXPIRED: "انتهت مدة صلاحية الشهادة.",
        S.SUPERSEDED: "حل محل هذا الإصدار إصدار أحدث بالرقم نفسه.",
        S.TERMINATED: "أنهيت الشهادة بطلب من حاملها.",
    },
)

FRENCH = Language(
    code="fr",
    dir="ltr",
    name="Français",
    labels={
        "title": "Vérification du certificat",
        "comma": ", ",
        "body": "Organisme de certification",
        "number": "Numéro du certificat",
        "issue": "Émission",
        "latest": "la plus récente",
        "status": "Statut",
        "since": "depuis le",
        "holder": "Titulaire",
        "country": "Pays",
        "product": "Produit",
        "brand": "Marque",
        "model": "Modèle / référence",
        "scheme": "Schéma de certification",
        "version": "version",
        "standards": "Normes",
        "edition": "édition",
        "scope": "Portée",
        "issued_on": "Date d'émission",
        "valid_until": "Valide jusqu'au",
        "key_id": "Identifiant de la clé de signature",
        "unsigned": "signature en attente",
        "offline": "La signature du PDF du certificat peut être vérifiée hors ligne avec la "
        "commande :",
        "public_keys": "Clés publiques de signature :",
        "not_found": "Certificat introuvable",
        "not_found_detail": "Aucun certificat ne porte ce numéro. Vérifiez le numéro imprimé "
        "sur le certificat ; un certificat absent de ce registre n'est pas valide.",
    },
    status={
        S.ACTIVE: "Valide",
        S.SUSPENDED: "Suspendu",
        S.WITHDRAWN: "Retiré",
        S.EXPIRED: "Expiré",
        S.SUPERSEDED: "Remplacé",
        S.TERMINATED: "Résilié",
    },
    meaning={
        S.ACTIVE: "Le certificat est en vigueur.",
        S.SUSPENDED: "Le certificat est temporairement suspendu : il ne peut pas être "
        "invoqué pendant la suspension.",
        S.WITHDRAWN: "Le certificat a été retiré ; il n'est plus valide.",
        S.EXPIRED: "La période de validité du certificat est échue.",
        S.SUPERSEDED: "Cette émission a été remplacée par une émission plus récente du même "
        "numéro.",
        S.TERMINATED: "Le certificat a pris fin à la demande de son titulaire.",
    },
)

ENGLISH = Language(
    code="en",
    dir="ltr",
    name="English",
    labels={
        "title": "Certificate verification",
        "comma": ", ",
        "body": "Certification body",
        "number": "Certificate number",
        "issue": "Issue",
        "latest": "latest",
        "status": "Status",
        "since": "since",
        "holder": "Holder",
        "country": "Country",
        "product": "Product",
        "brand": "Brand",
        "model": "Model / type",
        "scheme": "Certification scheme",
        "version": "version",
        "standards": "Standards",
        "edition": "edition",
        "scope": "Scope",
        "issued_on": "Issued on",
        "valid_until": "Valid until",
        "key_id": "Signing key id",
        "unsigned": "signature pending",
        "offline": "The signature of the certificate's PDF can be checked offline with:",
        "public_keys": "Public signing keys:",
        "not_found": "Certificate not found",
        "not_found_detail": "No certificate has this number. Check the number printed on "
        "the certificate; a certificate not listed here is not valid.",
    },
    status={
        S.ACTIVE: "Active",
        S.SUSPENDED: "Suspended",
        S.WITHDRAWN: "Withdrawn",
        S.EXPIRED: "Expired",
        S.SUPERSEDED: "Superseded",
        S.TERMINATED: "Terminated",
    },
    meaning={
        S.ACTIVE: "The certificate is valid.",
        S.SUSPENDED: "The certificate is temporarily suspended and may not be relied on "
        "while suspended.",
        S.WITHDRAWN: "The certificate has been withdrawn and is no longer valid.",
        S.EXPIRED: "The certificate's period of validity has ended.",
        S.SUPERSEDED: "This issue has been replaced by a newer issue of the same number.",
        S.TERMINATED: "The certificate was terminated at the holder's request.",
    },
)

LANGUAGES: tuple[Language, ...] = (ARABIC, FRENCH, ENGLISH)

STATUS_STYLE: Mapping[str, StatusStyle] = {
    S.ACTIVE: StatusStyle("#14532d", "#dcfce7"),
    S.SUSPENDED: StatusStyle("#7c2d12", "#fef3c7"),
    S.WITHDRAWN: StatusStyle("#7f1d1d", "#fee2e2"),
    S.EXPIRED: StatusStyle("#374151", "#e5e7eb"),
    S.SUPERSEDED: StatusStyle("#1e3a8a", "#e0e7ff"),
    S.TERMINATED: StatusStyle("#374151", "#e5e7eb"),
}
