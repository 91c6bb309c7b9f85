"""The Temporal type names of the workflows: what the API starts and updates by name, and
what one workflow starts another by. A change that breaks the histories of running
workflows gets a new name (``.v2``) instead of ``workflow.patched`` branches."""

from __future__ import annotations

REQUEST_WORKFLOW = "CertificationRequest.v2"
CERTIFICATE_WORKFLOW = "Certificate.v2"
OUTBOX_WORKFLOW = "OutboxDelivery"
