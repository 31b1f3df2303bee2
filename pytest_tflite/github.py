"""The GitHub REST API, as much as posting one pull-request comment needs: list a pull request's
issue comments (paginated), create one, update one. Standard library only (``urllib``, and the
ground floor's ``comment_marker`` and ``errors``), so the CLI posts from a bare runner without
another dependency.

The comment is found by the hidden marker its body starts with (``<!-- pytest-tflite:ID -->``,
written by ``--tflite-markdown``): a comment from another tool, or one that only mentions the
marker further down, is never edited.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from .comment_marker import COMMENT_LIMIT, read_marker, utf16_length
from .errors import TFLiteError

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 100  # the API's maximum: fewest round trips on a busy pull request
MAX_PAGES = 100  # 10,000 comments; a Link header that never ends must not loop forever
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")
_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class GitHubError(TFLiteError):
    """An API call that failed: the method, the URL, the HTTP status and GitHub's message."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def check_repo(repo: str) -> str:
    if not _REPO_RE.match(repo):
        raise TFLiteError(f"--repo must be OWNER/NAME, got {repo!r}")
    return repo


class GitHub:
    """A client for one API root (``https://api.github.com``, or a GitHub Enterprise
    ``https://HOST/api/v3``) with one token."""

    def __init__(self, token: str, api_url: str = DEFAULT_API_URL, timeout: float = 30.0) -> None:
        self.token = token
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        parsed = urllib.parse.urlsplit(self.api_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise TFLiteError(f"--api-url must be an http(s) URL, got {api_url!r}")
        self._origin = (parsed.scheme, parsed.netloc)

    def request(self, method: str, url: str, body: dict[str, Any] | None = None
                ) -> tuple[Any, dict[str, str]]:
        """One call; the decoded JSON and the response headers. ``url`` is a path under the API
        root or a full URL on the same host (the pagination links)."""
        if not url.startswith(("http://", "https://")):
            url = self.api_url + url
        # The token goes only to the API's own host, whatever a Link header says.
        parsed = urllib.parse.urlsplit(url)
        if (parsed.scheme, parsed.netloc) != self._origin:
            raise GitHubError(f"{method} {url}: refusing to send the token to another host "
                              f"than {self.api_url}")
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self.token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "pytest-tflite",  # the API refuses requests without one
            **({"Content-Type": "application/json"} if data is not None else {}),
        })
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read().decode("utf-8")
                headers = {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as exc:
            raise GitHubError(f"{method} {url}: HTTP {exc.code} {exc.reason}: "
                              f"{_message(exc)}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise GitHubError(f"{method} {url}: cannot reach the API: {reason}") from None
        try:
            return (json.loads(text) if text else None), headers
        except json.JSONDecodeError:
            raise GitHubError(f"{method} {url}: the answer is not JSON: {text[:200]!r}") from None

    def issue_comments(self, repo: str, number: int) -> Iterator[dict[str, Any]]:
        """Every comment on the pull request's conversation, oldest first, page by page."""
        url: str | None = f"/repos/{check_repo(repo)}/issues/{number}/comments?per_page={PER_PAGE}"
        for _ in range(MAX_PAGES):
            if url is None:
                return
            page, headers = self.request("GET", url)
            if not isinstance(page, list):
                raise GitHubError(f"GET {url}: expected a list of comments, got {page!r:.200}")
            yield from page
            found = _NEXT_RE.search(headers.get("link", ""))
            url = found.group(1) if found else None
        raise GitHubError(f"{repo}#{number}: more than {MAX_PAGES} pages of comments")

    def create_comment(self, repo: str, number: int, body: str) -> dict[str, Any]:
        found, _ = self.request("POST", f"/repos/{check_repo(repo)}/issues/{number}/comments",
                                {"body": body})
        return dict(found)

    def update_comment(self, repo: str, comment_id: int, body: str) -> dict[str, Any]:
        found, _ = self.request("PATCH", f"/repos/{check_repo(repo)}/issues/comments/{comment_id}",
                                {"body": body})
        return dict(found)


def _message(error: urllib.error.HTTPError) -> str:
    """GitHub's own words: the JSON ``message`` (and its ``errors``), else the body's start."""
    try:
        text = error.read().decode("utf-8", "replace")
    except OSError:
        return "(no body)"
    try:
        found = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()[:300] or "(no body)"
    if not isinstance(found, dict):
        return text.strip()[:300]
    message = str(found.get("message", text.strip()[:300]))
    details = [str(e.get("message") or e.get("code") or e) if isinstance(e, dict) else str(e)
               for e in found.get("errors") or []]
    return message + (f" ({'; '.join(details)})" if details else "")


def post_comment(client: GitHub, repo: str, number: int, body: str) -> tuple[str, dict[str, Any]]:
    """Update the pull request's comment that starts with ``body``'s marker, or create it.
    Returns ``("updated" | "created" | "unchanged", the comment)``. With several such comments
    (posted by hand, or by a race of two runs), the oldest is updated and the rest left alone."""
    mark = read_marker(body)
    if mark is None:
        raise TFLiteError("the comment body does not start with a pytest-tflite marker "
                          "(<!-- pytest-tflite:ID -->): write it with --tflite-markdown")
    if utf16_length(body) > COMMENT_LIMIT:
        raise TFLiteError(f"the comment body has {utf16_length(body):,} characters; GitHub "
                          f"takes at most {COMMENT_LIMIT:,}")
    for comment in client.issue_comments(repo, number):
        if read_marker(str(comment.get("body") or "")) == mark:
            if comment.get("body") == body:
                return "unchanged", comment
            return "updated", client.update_comment(repo, int(comment["id"]), body)
    return "created", client.create_comment(repo, number, body)
