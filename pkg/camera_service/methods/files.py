"""File methods over a FileIndex (PROTOCOL 5.12, 5.13): `list_snapshots`,
`get_snapshot_info` (viewer) and `delete_snapshot` (operator).

The handlers are generic over the index's kind, so recordings get the same three methods
from another index (plus their own fields) later. They only read the index; no call scans
the directory.
"""

from __future__ import annotations

from typing import Any

from camera_service.health import utc_timestamp
from camera_service.media.files import FileEntry, FileIndex
from camera_service.media.names import check_base_name
from camera_service.rpc.errors import file_not_found, invalid_params
from camera_service.rpc.registry import MethodRegistry

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def int_param(params: dict[str, Any], name: str, default: int, low: int, high: int | None) -> int:
    """An optional integer param within [low, high]; -32602 naming it otherwise (a JSON
    boolean is not an integer, nor is 10.0)."""
    value = params.get(name, default)
    if type(value) is not int or value < low or (high is not None and value > high):
        expected = f"{low}-{high}" if high is not None else f">= {low}"
        raise invalid_params(f"{name} must be an integer {expected}")
    return value


def page_params(params: dict[str, Any]) -> tuple[int, int]:
    """`limit` (1-1000, default 100) and `offset` (>= 0, default 0) of PROTOCOL 5.12."""
    limit = int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    return limit, int_param(params, "offset", 0, 0, None)


def filename_param(params: dict[str, Any]) -> str:
    """The required `filename`: a base name (PROTOCOL 5.8), else -32602 naming it."""
    if "filename" not in params:
        raise invalid_params("filename is required: the base name of a file")
    name = params["filename"]
    if not isinstance(name, str):
        got = "null" if name is None else type(name).__name__
        raise invalid_params(f"filename must be a string, got {got}")
    try:
        return check_base_name(name)
    except ValueError as exc:
        raise invalid_params(f"filename: {exc}") from None


class FileApi:
    """`list`, `info` and `delete` handlers for the files of one index.

    `detail_field` names the index's probed detail in each FILE object ("resolution" for
    snapshots).
    """

    def __init__(self, index: FileIndex, detail_field: str) -> None:
        self.index = index
        self.detail_field = detail_field
        self._deleted_message = f"{index.kind.capitalize()} file deleted successfully"

    def file_object(self, entry: FileEntry) -> dict[str, Any]:
        """FILE of PROTOCOL 5.12."""
        return {
            "filename": entry.name,
            "file_size": entry.size,
            "modified_time": utc_timestamp(entry.mtime),
            "download_url": self.index.download_url(entry.name),
            **self.details(entry),
        }

    def details(self, entry: FileEntry) -> dict[str, Any]:
        """The fields FILE adds for this kind of file."""
        return {self.detail_field: self.index.detail(entry)}

    def info_object(self, entry: FileEntry) -> dict[str, Any]:
        """FILE plus `created_time` (PROTOCOL 5.13)."""
        info = self.file_object(entry)
        info["created_time"] = utc_timestamp(entry.ctime)
        return info

    def page(self, limit: int, offset: int) -> dict[str, Any]:
        """The list result for one page of the index as it is now."""
        entries, total = self.index.list(limit, offset)
        return {
            "files": [self.file_object(entry) for entry in entries],
            "total": total,
            "limit": limit,
            "offset": offset,
        }

    def list_files(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        return self.page(*page_params(params))

    def get_info(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        name = filename_param(params)
        entry = self.index.get(name)
        if entry is None:
            raise file_not_found(self.index.kind, name)
        return self.info_object(entry)

    def delete(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        name = filename_param(params)
        try:
            self.index.delete(name)
        except FileNotFoundError:
            raise file_not_found(self.index.kind, name) from None
        return {"filename": name, "deleted": True, "message": self._deleted_message}


def register(registry: MethodRegistry, snapshots: FileIndex) -> None:
    """Add the snapshot file methods of PROTOCOL 5.12/5.13 to `registry`."""
    api = FileApi(snapshots, "resolution")
    registry.add("list_snapshots", api.list_files, "viewer")
    registry.add("get_snapshot_info", api.get_info, "viewer")
    registry.add("delete_snapshot", api.delete, "operator")
