"""Durations handed to workflows at their start, from configuration (tests shorten them)."""

from __future__ import annotations

from models.certificate_lifecycle import CertificateTiming
from models.outbox import DeliveryPolicy
from models.request_payloads import Timing
from mutabaqa.settings import Settings


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        max_attempts=settings.outbox_max_attempts,
        initial_interval=settings.outbox_initial_interval_seconds,
        maximum_interval=settings.outbox_maximum_interval_seconds,
    )


def timing_of(settings: Settings) -> Timing:
    return Timing(
        info_response=settings.info_response_seconds,
        info_reminder_fraction=settings.info_reminder_fraction,
        sample_receipt_target=settings.sample_receipt_target_seconds,
        testing_target=settings.testing_target_seconds,
        decision_target=settings.decision_target_seconds,
        appeal_window=settings.appeal_window_seconds,
        delivery=delivery_policy(settings),
        certificate=CertificateTiming(
            suspension_max=settings.suspension_max_seconds,
            surveillance_interval=settings.surveillance_interval_seconds,
            surveillance_deadline=settings.surveillance_deadline_seconds,
            validity=settings.certificate_validity_seconds,
            history_threshold=settings.certificate_history_threshold,
            delivery=delivery_policy(settings),
        ),
    )
