"""The OpenAPI 3 description of the /v1 API, served at ``/v1/openapi.json``.

``docs/api.md`` holds the same document in a fenced ``json`` block; a test keeps the two equal
and runs schemathesis against the live server with it.
"""

from __future__ import annotations

from typing import Any


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _bad_request(description: str) -> dict[str, Any]:
    """400: the JSON error, or plain text when the HTTP layer refuses an oversized request."""
    out = _error(f"{description}; a request line or header over 8 KiB gets a plain-text 400")
    out["content"]["text/plain"] = {"schema": {"type": "string"}}
    return out


def _json(description: str, ref: str, link: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }
    if link:
        out["headers"] = {
            "Link": {
                "description": 'absolute URL of the next page: `<url>; rel="next"`',
                "schema": {"type": "string"},
            }
        }
    return out


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_CURSOR = _query(
    "cursor",
    "opaque cursor from `next_cursor` of the previous page (valid while the server runs)",
    {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": "^[A-Za-z0-9_.-]+$"},
)
_LIMIT = _query(
    "limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
)
_SOURCE = _query(
    "source",
    "a source key as `/v1/sources` lists it, e.g. `hf/huggingface.co/model/org/name`. Keys "
    "hold `%XX` (every `dir/…` key, the `hf/…` keys of a hub on a port): in a URL each `%` is "
    "encoded again (`%2F` → `%252F`). A value that cannot be a key (a key sent unencoded) "
    "and matches nothing is a 400",
    {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[!-~]+$"},
)
_UNAVAILABLE = _error("the vault or the catalog is unreachable")
_OPTIONAL_TOKEN: list[dict[str, list[str]]] = [{}, {"nodeToken": []}]

_SNAPSHOT_ROW = {
    "type": "object",
    "required": [
        "snapshot",
        "source",
        "kind",
        "revision",
        "captured_at",
        "access",
        "files",
        "bytes",
    ],
    "properties": {
        "snapshot": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "source": {"type": "string"},
        "kind": {"type": "string", "examples": ["hf-model", "hf-dataset", "dir"]},
        "revision": {"type": "string"},
        "commit": {"type": "string"},
        "captured_at": {"type": "string"},
        "parent": {"type": "string"},
        "access": {"type": "string", "enum": ["public", "token"]},
        "files": {"type": "integer", "minimum": 0},
        "bytes": {"type": "integer", "minimum": 0},
    },
}


_DATE = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
_DEPRECATION = {
    "type": "object",
    "description": "one model's lifecycle as a page states it (`deprecations parse` fields)",
    "required": [
        "provider",
        "model",
        "aliases",
        "shutdown",
        "source_url",
        "quote",
        "source",
        "page",
        "snapshot",
        "captured_at",
    ],
    "properties": {
        "provider": {"type": "string", "description": "the page's parser, e.g. `openai`"},
        "model": {"type": "string"},
        "aliases": {"type": "array", "items": {"type": "string"}},
        "region": {"type": "string", "description": "only for per-region dates"},
        "shutdown": {
            "type": "object",
            "required": ["qualifier"],
            "properties": {
                "date": _DATE,
                "qualifier": {"type": "string", "enum": ["exact", "not_before", "none"]},
            },
        },
        "announced": _DATE,
        "replacement": {"type": "string"},
        "status": {"type": "string", "enum": ["active", "legacy", "deprecated", "retired"]},
        "source_url": {"type": "string"},
        "quote": {"type": "string", "description": "the row or sentence (page text: untrusted)"},
        "source": {"type": "string", "description": "the page's source key, `page/<id>`"},
        "page": {"type": "string", "description": "the `[[watch.page]]` id"},
        "snapshot": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "captured_at": {"type": "string"},
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "seedvault node API",
        "version": "1",
        "description": "Read access to the snapshots a seedvault node has archived.",
    },
    "paths": {
        "/v1/sources": {
            "get": {
                "operationId": "listSources",
                "summary": "every archived source with its refs and latest snapshot",
                "responses": {
                    "200": _json("the sources, sorted by key", "SourceList"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/v1/snapshots": {
            "get": {
                "operationId": "listSnapshots",
                "summary": "snapshots, newest first",
                "parameters": [_SOURCE, _CURSOR, _LIMIT],
                "responses": {
                    "200": _json("one page of snapshots", "SnapshotPage", link=True),
                    "400": _bad_request("a malformed parameter or cursor"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/v1/snapshots/{id}": {
            "get": {
                "operationId": "getSnapshot",
                "summary": "the snapshot manifest, exactly as stored (its BLAKE3 is the id)",
                "security": _OPTIONAL_TOKEN,
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "description": "snapshot id (64 hex) or a unique prefix of at least 8",
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{8,64}$"},
                    }
                ],
                "responses": {
                    "200": _json("the manifest", "Manifest"),
                    "400": _bad_request("not a snapshot id"),
                    "401": _error("a token snapshot, and no node token was presented"),
                    "404": _error("no such snapshot, or an ambiguous prefix"),
                    "500": _error("the stored manifest is damaged"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/v1/files/{blake3}": {
            "get": {
                "operationId": "getFile",
                "summary": "a file's content, verified while it streams; one byte range allowed",
                "security": _OPTIONAL_TOKEN,
                "parameters": [
                    {
                        "name": "blake3",
                        "in": "path",
                        "required": True,
                        "description": "BLAKE3 of the file content (64 hex)",
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    },
                    {
                        "name": "Range",
                        "in": "header",
                        "required": False,
                        "description": "one range: `bytes=START-[END]` or `bytes=-SUFFIX`",
                        "schema": {"type": "string", "maxLength": 64},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the whole file",
                        "content": {
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            }
                        },
                    },
                    "206": {
                        "description": "the requested range (with Content-Range)",
                        "content": {
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            }
                        },
                    },
                    "400": _bad_request("not a file id, or a malformed Range header"),
                    "401": _error("only token snapshots list this file, and no node token"),
                    "404": _error("no archived snapshot lists this file"),
                    "416": _error("the range is outside the file, or several ranges"),
                    "500": _error("the file is damaged in the vault (journaled as fixity_failed)"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/v1/events": {
            "get": {
                "operationId": "listEvents",
                "summary": "events (Events v1), oldest first",
                "parameters": [
                    _query(
                        "type",
                        "an event type, e.g. `repo_gated`",
                        {"type": "string", "pattern": "^[a-z][a-z_]{0,63}$"},
                    ),
                    _SOURCE,
                    _query(
                        "since",
                        "only events recorded at or after this UTC time",
                        {
                            "type": "string",
                            "pattern": r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?Z?)?$",
                        },
                    ),
                    _CURSOR,
                    _LIMIT,
                ],
                "responses": {
                    "200": _json("one page of events", "EventPage", link=True),
                    "400": _bad_request("a malformed parameter or cursor"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/v1/deprecations": {
            "get": {
                "operationId": "listDeprecations",
                "summary": "known deprecations of provider models (filled by the provider watch)",
                "description": (
                    "The merged lifecycle state of every archived deprecation page, one object "
                    "per (page, model, region), read from each page's newest copy whose parse "
                    "was accepted. `model` matches a model id or one of its aliases."
                ),
                "parameters": [
                    _query(
                        "provider",
                        "e.g. `openai`",
                        {"type": "string", "minLength": 1, "maxLength": 200},
                    ),
                    _query(
                        "model", "a model id", {"type": "string", "minLength": 1, "maxLength": 200}
                    ),
                ],
                "responses": {
                    "200": _json("the deprecations", "DeprecationList"),
                    "400": _bad_request("a malformed parameter"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "this document",
                "responses": {
                    "200": {
                        "description": "the OpenAPI document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "nodeToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "a node token (`[server] tokens_env`); other bearers are anonymous",
            }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    }
                },
            },
            "Snapshot": _SNAPSHOT_ROW,
            "SnapshotPage": {
                "type": "object",
                "required": ["snapshots"],
                "properties": {
                    "snapshots": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Snapshot"},
                    },
                    "next_cursor": {"type": "string"},
                },
            },
            "Ref": {
                "type": "object",
                "required": ["revision", "snapshot", "updated"],
                "properties": {
                    "revision": {"type": "string"},
                    "snapshot": {"type": "string"},
                    "commit": {"type": "string"},
                    "updated": {"type": "string"},
                },
            },
            "Source": {
                "type": "object",
                "required": ["key", "kind", "snapshots", "latest", "refs"],
                "properties": {
                    "key": {"type": "string"},
                    "kind": {"type": "string"},
                    "snapshots": {"type": "integer", "minimum": 1},
                    "latest": {
                        "type": "object",
                        "required": ["snapshot", "captured_at"],
                        "properties": {
                            "snapshot": {"type": "string"},
                            "captured_at": {"type": "string"},
                        },
                    },
                    "refs": {"type": "array", "items": {"$ref": "#/components/schemas/Ref"}},
                },
            },
            "SourceList": {
                "type": "object",
                "required": ["sources"],
                "properties": {
                    "sources": {"type": "array", "items": {"$ref": "#/components/schemas/Source"}}
                },
            },
            "FileEntry": {
                "type": "object",
                "required": ["path", "size", "blake3", "sha256"],
                "properties": {
                    "path": {"type": "string"},
                    "size": {"type": "integer", "minimum": 0},
                    "blake3": {"type": "string"},
                    "sha256": {"type": "string"},
                    "upstream_oid": {"type": "string"},
                },
            },
            "Manifest": {
                "type": "object",
                "description": "snapshot manifest v1 (docs/storage-format.md)",
                "required": ["manifest", "kind", "source", "captured_at", "files", "access"],
                "properties": {
                    "manifest": {"type": "integer", "enum": [1]},
                    "kind": {"type": "string"},
                    "source": {"type": "object"},
                    "captured_at": {"type": "string"},
                    "files": {"type": "array", "items": {"$ref": "#/components/schemas/FileEntry"}},
                    "access": {"type": "string"},
                    "parent": {"type": "string"},
                },
            },
            "Event": {
                "type": "object",
                "required": ["id", "type", "severity", "source"],
                "properties": {
                    "id": {"type": "string"},
                    "type": {"type": "string"},
                    "severity": {"type": "string", "enum": ["urgent", "routine"]},
                    "source": {"type": "string"},
                    "at": {"type": "string"},
                    "subject": {"type": "object"},
                    "evidence": {"type": "string"},
                    "payload": {"type": "object"},
                },
            },
            "EventPage": {
                "type": "object",
                "required": ["events"],
                "properties": {
                    "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                    "next_cursor": {"type": "string"},
                },
            },
            "DeprecationList": {
                "type": "object",
                "required": ["deprecations"],
                "properties": {
                    "deprecations": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Deprecation"},
                    }
                },
            },
            "Deprecation": _DEPRECATION,
        },
    },
}
