"""Approval links of a suspended flow step (Windmill's ``get_resume_urls``): URLs carrying
an HMAC of (workspace, job id, resume id, approver), so whoever holds one may resume or cancel that
step without an account, and nothing else. What a link does is the flow engine's
(:mod:`gristmill.flows.suspend`, ``FlowEngine.resume_step``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote, urlencode
from uuid import UUID

from gristmill.errors import Forbidden

__all__ = [
    "MAX_RESUME_ID",
    "ResumeUrls",
    "check_resume_signature",
    "resume_signature",
    "resume_urls",
]

#: Resume ids are Windmill's (a u32 chosen by the client).
MAX_RESUME_ID = 2**32 - 1


def resume_signature(
    secret: bytes, workspace_id: str, job_id: UUID, resume_id: int, approver: str | None
) -> str:
    # Domain-separated from job tokens, which use the same key.
    message = f"resume\0{workspace_id}\0{job_id}\0{resume_id}\0{approver or ''}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def check_resume_signature(
    secret: bytes,
    workspace_id: str,
    job_id: UUID,
    resume_id: int,
    approver: str | None,
    signature: str,
) -> None:
    """:class:`Forbidden` unless ``signature`` signs this workspace, job, resume id and
    approver."""
    expected = resume_signature(secret, workspace_id, job_id, resume_id, approver)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise Forbidden("invalid signature for this job, resume id and approver")


@dataclass(frozen=True)
class ResumeUrls:
    approval_page: str
    resume: str
    cancel: str


def resume_urls(
    secret: bytes,
    *,
    base_url: str,
    workspace_id: str,
    job_id: UUID,
    resume_id: int,
    approver: str | None,
) -> ResumeUrls:
    """The three links of one approval (Windmill's shapes)."""
    signature = resume_signature(secret, workspace_id, job_id, resume_id, approver)
    query = f"?{urlencode({'approver': approver})}" if approver else ""
    ws = quote(workspace_id, safe="")
    tail = f"{job_id}/{resume_id}/{signature}{query}"
    base = base_url.rstrip("/")
    return ResumeUrls(
        approval_page=f"{base}/approve/{ws}/{tail}",
        resume=f"{base}/api/w/{ws}/jobs_u/resume/{tail}",
        cancel=f"{base}/api/w/{ws}/jobs_u/cancel/{tail}",
    )
