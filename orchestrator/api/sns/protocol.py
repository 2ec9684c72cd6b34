"""AWS's query protocol, as SNS speaks it: form-encoded requests in, XML answers out.

A request is ``POST /`` with ``Action=<name>&Version=2010-03-31&...``; nested members travel
under dotted names botocore's query serializer makes (``Attributes.entry.1.key``,
``PublishBatchRequestEntries.member.2.Message``, ``MessageAttributes.entry.1.Value.DataType``).
They are read back into the action's input structure, guided by the service model, and
answered as ``<ActionResponse><ActionResult>...</ActionResult><ResponseMetadata>`` XML that
botocore's query parser reads by the output shape. Errors are ``<ErrorResponse>`` documents
whose ``Code`` botocore maps to its modelled exceptions (``NotFound``, ``InvalidParameter``...).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from orchestrator.api.shapes import ServiceShapes

XML_NAMESPACE = "http://sns.amazonaws.com/doc/2010-03-31/"
API_VERSION = "2010-03-31"


def decode(shapes: ServiceShapes, shape_name: str, form: dict[str, str]) -> dict[str, Any]:
    """The input structure ``form`` (flat dotted names -> text) carries for ``shape_name``.

    Values keep their text except booleans and integers, which become JSON values when they
    read as such (anything else stays text, for the shape check to refuse by name).
    """
    present = _prefixes(form)
    value = _decode(shapes, shape_name, "", form, present)
    return value if isinstance(value, dict) else {}


def _prefixes(form: dict[str, str]) -> set[str]:
    prefixes: set[str] = set()
    for name in form:
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            prefixes.add(".".join(parts[:end]))
    return prefixes


def _decode(
    shapes: ServiceShapes, shape_name: str, where: str, form: dict[str, str], present: set[str]
) -> Any:
    shape = shapes.shapes[shape_name]
    kind = shape["type"]
    if kind == "structure":
        result: dict[str, Any] = {}
        for member, ref in shape.get("members", {}).items():
            name = _join(where, ref.get("locationName", member))
            if name in present:
                result[member] = _decode(shapes, ref["shape"], name, form, present)
        return result
    if kind == "list":
        if form.get(where) == "":
            return []  # botocore sends an empty list as ``Name=``
        member_ref = shape["member"]
        items = []
        index = 1
        while (item := f"{where}.{member_ref.get('locationName', 'member')}.{index}") in present:
            items.append(_decode(shapes, member_ref["shape"], item, form, present))
            index += 1
        return items
    if kind == "map":
        entries: dict[str, Any] = {}
        key_name = shape["key"].get("locationName", "key")
        value_name = shape["value"].get("locationName", "value")
        index = 1
        while (entry := f"{where}.entry.{index}") in present:
            key = form.get(f"{entry}.{key_name}")
            if key is not None:
                entries[key] = _decode(
                    shapes, shape["value"]["shape"], f"{entry}.{value_name}", form, present
                )
            index += 1
        return entries
    text = form.get(where)
    if text is None:
        return None
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    if kind in ("integer", "long") and text.lstrip("-").isdigit():
        return int(text)
    return text


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def response(shapes: ServiceShapes, action: str, answer: dict[str, Any], request_id: str) -> str:
    """The XML document of ``action``'s answer."""
    operation = shapes.operations[action]
    result = ""
    if "output" in operation:
        inner = _encode_members(shapes, operation["output"], answer)
        wrapper = operation.get("resultWrapper", f"{action}Result")
        result = f"<{wrapper}>{inner}</{wrapper}>"
    return (
        f'<{action}Response xmlns="{XML_NAMESPACE}">{result}'
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    )


def _encode_members(shapes: ServiceShapes, shape_name: str, value: dict[str, Any]) -> str:
    parts = []
    for member, ref in shapes.shapes[shape_name].get("members", {}).items():
        if value.get(member) is None:
            continue
        name = ref.get("locationName", member)
        parts.append(f"<{name}>{_encode(shapes, ref['shape'], value[member])}</{name}>")
    return "".join(parts)


def _encode(shapes: ServiceShapes, shape_name: str, value: Any) -> str:
    shape = shapes.shapes[shape_name]
    kind = shape["type"]
    if kind == "structure":
        return _encode_members(shapes, shape_name, value)
    if kind == "list":
        tag = shape["member"].get("locationName", "member")
        return "".join(f"<{tag}>{_encode(shapes, shape['member']['shape'], item)}</{tag}>" for item in value)
    if kind == "map":
        key_tag = shape["key"].get("locationName", "key")
        value_tag = shape["value"].get("locationName", "value")
        return "".join(
            f"<entry><{key_tag}>{escape(str(key))}</{key_tag}>"
            f"<{value_tag}>{_encode(shapes, shape['value']['shape'], item)}</{value_tag}></entry>"
            for key, item in value.items()
        )
    if kind == "boolean":
        return "true" if value else "false"
    return escape(str(value))


def error_document(code: str, message: str, sender: bool, request_id: str) -> str:
    """AWS's query-protocol error: botocore raises ``client.exceptions`` by ``Code``."""
    return (
        f'<ErrorResponse xmlns="{XML_NAMESPACE}"><Error><Type>{"Sender" if sender else "Receiver"}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
