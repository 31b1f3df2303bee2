"""The GitHub REST API, as much as posting one pull-request comment needs: list a pull request's
issue comments (paginated), create one, update one. Standard library only (``urllib``, and the
ground floor's ``comment_marker`` and ``errors``), so the CLI posts from a bare runner without
another dependency.

The comment is found by the hidden marker its body starts with (``<!-- pytest-tflite:ID -->``,
written by ``--tflite-markdown``) *and* by its author: anyone can write the marker into a comment
of their own, so a marked comment by someone other than the expected author (by default
``github-actions[bot]``, the login of a workflow's ``GITHUB_TOKEN``) is never edited nor taken for
ours. A comment from another tool, or one that only mentions the marker further down, is never
edited either.

The token goes to the API's own origin (scheme and host) only: pagination links and redirects
that lead elsewhere are refused, since ``urllib`` would forward the ``Authorization`` header.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any, NamedTuple

from .comment_marker import COMMENT_LIMIT, read_marker, utf16_length
from .errors import TFLiteError

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
DEFAULT_AUTHOR = "github-actions[bot]"  # who posts with a workflow's GITHUB_TOKEN
SELF = "@me"  # --author @me: the token's own login, from GET /user
PER_PAGE = 100  # the API's maximum: fewest round trips on a busy pull request
MAX_PAGES = 100  # 10,000 comments; a Link header that never ends must not loop forever
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")
_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")  # SHA-1, or SHA-256 repositories


class GitHubError(TFLiteError):
    """An API call that failed: the method, the URL, the HTTP status and GitHub's message."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def check_repo(repo: str) -> str:
    if not _REPO_RE.match(repo):
        raise TFLiteError(f"--repo must be OWNER/NAME, got {repo!r}")
    return repo


def check_sha(sha: str) -> str:
    """``--head-sha``: a full commit id, lower case (as the API writes it)."""
    if not _SHA_RE.match(sha.strip().lower()):
        raise TFLiteError(f"--head-sha must be a full commit id (40 hex digits), got {sha!r}: "
                          f"in a workflow_run workflow, ${{{{ github.event.workflow_run.head_sha }}}}")
    return sha.strip().lower()


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port, as the token's destination: ``HTTPS://API.github.com:443/x`` and
    ``https://api.github.com/y`` are one origin."""
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    try:
        port = parsed.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:  # a port that is not a number
        port = -1
    return scheme, (parsed.hostname or "").lower(), port


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects within the API's origin only. urllib's own handler copies every header,
    ``Authorization`` included, onto the redirected request wherever it points; a redirect to
    another host or scheme is refused here instead (with the token dropped the call would fail
    anyway, with a less clear error). 307 and 308 keep the method and the body, as RFC 9110
    says (GitHub answers a renamed repository's POST and PATCH with 307); urllib refuses them."""

    def __init__(self, api_url: str) -> None:
        super().__init__()
        self.api_url = api_url

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        method = req.get_method()
        if origin(newurl) != origin(self.api_url):
            fp.close()
            raise GitHubError(
                f"{method} {req.full_url}: HTTP {code} redirect to {newurl}: refusing to follow "
                f"it off the API's host {self.api_url} (the token would go with it); if the API "
                f"has moved, give its new root as --api-url", code)
        if code in (307, 308) and method not in ("GET", "HEAD"):
            kept = {k: v for k, v in req.header_items() if k.lower() not in ("host", "content-length")}
            return urllib.request.Request(newurl, data=req.data, method=method, headers=kept)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


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
        # Not urllib.request.urlopen: its redirect handler forwards the token to any host.
        self._opener = urllib.request.build_opener(_SameOriginRedirects(self.api_url))

    def request(self, method: str, url: str, body: dict[str, Any] | None = None
                ) -> tuple[Any, dict[str, str]]:
        """One call; the decoded JSON and the response headers. ``url`` is a path under the API
        root or a full URL on the same host (the pagination links)."""
        if not url.startswith(("http://", "https://")):
            url = self.api_url + url
        # The token goes only to the API's own host, whatever a Link header says.
        if origin(url) != origin(self.api_url):
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
            with self._opener.open(request, timeout=self.timeout) as response:
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

    def login(self) -> str:
        """The token's own login (``GET /user``). A personal access token or a GitHub App's user
        token has one; a workflow's ``GITHUB_TOKEN`` and an app's installation token do not: the
        API answers 403 "Resource not accessible by integration"."""
        try:
            found, _ = self.request("GET", "/user")
        except GitHubError as exc:
            if exc.status not in (401, 403, 404):
                raise
            raise GitHubError(
                f"--author {SELF}: {exc}. This token cannot say whose it is (a workflow's "
                f"GITHUB_TOKEN and a GitHub App's installation token cannot): name the author "
                f"instead, --author {DEFAULT_AUTHOR} for GITHUB_TOKEN, --author APP-SLUG[bot] for "
                f"an app", exc.status) from None
        login = found.get("login") if isinstance(found, dict) else None
        if not isinstance(login, str) or not login:
            raise GitHubError(f"GET {self.api_url}/user: no login in the answer: {found!r:.200}")
        return login

    def pull_request(self, repo: str, number: int) -> dict[str, Any]:
        found, _ = self.request("GET", f"/repos/{check_repo(repo)}/pulls/{number}")
        if not isinstance(found, dict):
            raise GitHubError(f"GET /repos/{repo}/pulls/{number}: expected a pull request, "
                              f"got {found!r:.200}")
        return found

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


def check_head(client: GitHub, repo: str, number: int, head_sha: str) -> None:
    """Refuse, before anything is posted, unless pull request ``number`` exists and its head is
    ``head_sha``: the number comes from an artifact the pull request's own run wrote, so it may
    name another pull request; and a newer push has its own run and comment."""
    expected = check_sha(head_sha)
    try:
        pull = client.pull_request(repo, number)
    except GitHubError as exc:
        if exc.status == 404:
            raise GitHubError(f"not posting: {repo} has no pull request #{number} ({exc}); "
                              f"check --pr", 404) from None
        raise
    head = pull.get("head")
    sha = head.get("sha") if isinstance(head, dict) else None
    if not isinstance(sha, str):
        raise GitHubError(f"GET /repos/{repo}/pulls/{number}: no head.sha in the answer")
    if sha.lower() != expected:
        raise GitHubError(
            f"not posting: the head of {repo}#{number} is {sha[:12]}, not {head_sha[:12]} "
            f"(--head-sha, the commit the report is about): the number names another pull "
            f"request, or the pull request has moved on (its new head gets its own report)")


def _is_author(comment: dict[str, Any], author: str) -> bool:
    user = comment.get("user")
    login = user.get("login") if isinstance(user, dict) else None
    # Logins are case-insensitive on GitHub; the API writes them as the account spells them.
    return isinstance(login, str) and login.casefold() == author.casefold()


class Posted(NamedTuple):
    """What ``post_comment`` did: ``"updated" | "created" | "unchanged"``, the comment as the
    API returned it, and the logins of others' comments that carry the same marker (ignored)."""

    action: str
    comment: dict[str, Any]
    ignored: list[str]


def post_comment(client: GitHub, repo: str, number: int, body: str,
                 author: str = DEFAULT_AUTHOR) -> Posted:
    """Update the pull request's comment by ``author`` that starts with ``body``'s marker, or
    create one. A marked comment by anyone else is left alone: whoever can comment on the pull
    request can write the marker, and must not get the bot to edit their comment, nor to post
    nothing because their comment already shows the expected body. With several comments of
    our own (a race of two runs), the oldest is updated and the rest left alone."""
    mark = read_marker(body)
    if mark is None:
        raise TFLiteError("the comment body does not start with a pytest-tflite marker "
                          "(<!-- pytest-tflite:ID -->): write it with --tflite-markdown")
    if utf16_length(body) > COMMENT_LIMIT:
        raise TFLiteError(f"the comment body has {utf16_length(body):,} characters; GitHub "
                          f"takes at most {COMMENT_LIMIT:,}")
    ignored: list[str] = []
    for comment in client.issue_comments(repo, number):
        if read_marker(str(comment.get("body") or "")) != mark:
            continue
        if not _is_author(comment, author):
            user = comment.get("user")
            ignored.append(str(user.get("login") if isinstance(user, dict) else user))
            continue
        if comment.get("body") == body:
            return Posted("unchanged", comment, ignored)
        return Posted("updated", client.update_comment(repo, int(comment["id"]), body), ignored)
    return Posted("created", client.create_comment(repo, number, body), ignored)
