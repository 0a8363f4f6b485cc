"""detect-secrets plugins for Google Cloud credentials, which detect-secrets 1.5 has no detector for.

The pipeline runs on Google Cloud (Vertex AI, gs:// buckets), so these are the credentials most likely to leak into a
compiled spec or a manifest. detect-secrets loads this file as a custom plugin file (``kubeflow/secrets_scan.py``
passes it with a ``file://`` path); everything else (keywords, high-entropy strings, AWS, private keys, tokens, the
``pragma: allowlist secret`` comments, the filters against placeholders) is detect-secrets' own.
"""

import re

from detect_secrets.plugins.base import RegexBasedDetector


class GoogleApiKeyDetector(RegexBasedDetector):
    """Google API keys."""

    secret_type = "Google API Key"  # pragma: allowlist secret
    denylist = (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),)


class GoogleOAuthAccessTokenDetector(RegexBasedDetector):
    """Google OAuth 2.0 access tokens."""

    secret_type = "Google OAuth Access Token"  # pragma: allowlist secret
    denylist = (re.compile(r"\bya29\.[0-9A-Za-z_-]{20,}"),)


class GcpServiceAccountKeyDetector(RegexBasedDetector):
    """A GCP service-account key file (its JSON, also escaped inside another JSON string)."""

    secret_type = "GCP Service Account Key"  # pragma: allowlist secret
    denylist = (
        re.compile(r'\\?"type\\?"\s*:\s*\\?"service_account\\?"'),
        re.compile(r'\\?"private_key(?:_id)?\\?"\s*:\s*\\?"[^"\\\s]+'),
    )
