"""ER7 encoding characters and the escape sequences that protect them inside values."""

from __future__ import annotations

from dataclasses import dataclass

from bcconnect.errors import ParseError


@dataclass(frozen=True, slots=True)
class EncodingCharacters:
    """The delimiters a message declares in MSH-1 and MSH-2 (``|`` and ``^~\\&`` by default)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @classmethod
    def from_msh(cls, field_separator: str, encoding: str) -> EncodingCharacters:
        r"""Read MSH-1 and MSH-2; a fifth MSH-2 character (v2.7 truncation) is accepted and ignored.

        >>> EncodingCharacters.from_msh("|", "^~\\&").component
        '^'
        """
        if len(encoding) not in (4, 5):
            raise ParseError(f"MSH-2 must hold 4 encoding characters, got {len(encoding)} ({encoding!r})")
        chars = (field_separator, *encoding[:4])
        if len(set(chars)) != len(chars):
            raise ParseError(f"MSH-1/MSH-2 encoding characters must all differ, got {''.join(chars)!r}")
        if any(c.isalnum() or c in "\r\n" for c in chars):
            raise ParseError(f"encoding characters must be punctuation, got {''.join(chars)!r}")
        return cls(field_separator, encoding[0], encoding[1], encoding[2], encoding[3])

    @property
    def msh2(self) -> str:
        """The MSH-2 text: component, repetition, escape and subcomponent characters."""
        return f"{self.component}{self.repetition}{self.escape}{self.subcomponent}"


DEFAULT_ENCODING = EncodingCharacters()


def _decode_hex(hex_digits: str) -> str | None:
    """``\\Xhhhh\\``: the bytes as UTF-8, else Latin-1; ``None`` when the digits are not hex."""
    if len(hex_digits) % 2 or not hex_digits:
        return None
    try:
        raw = bytes.fromhex(hex_digits)
    except ValueError:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def unescape(text: str, enc: EncodingCharacters = DEFAULT_ENCODING) -> str:
    r"""Decode the ER7 escape sequences in one value.

    Delimiter escapes become the delimiters, ``\.br\`` a line break, ``\Xhh..\`` the bytes it spells;
    highlighting (``\H\``, ``\N\``) is dropped. An unknown or unterminated sequence is kept as written, so
    no text is ever lost.

    >>> print(unescape("Smith \\T\\ Sons \\F\\ Co\\.br\\next \\X41\\ \\Z\\"))
    Smith & Sons | Co
    next A \Z\
    """
    esc = enc.escape
    if esc not in text:
        return text
    simple = {
        "F": enc.field,
        "S": enc.component,
        "T": enc.subcomponent,
        "R": enc.repetition,
        "E": enc.escape,
        "H": "",
        "N": "",
        ".br": "\n",
    }
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        end = text.find(esc, i + 1) if char == esc else -1
        if end == -1:
            out.append(char)
            i += 1
            continue
        body = text[i + 1 : end]
        if body in simple:
            out.append(simple[body])
        elif body.startswith("X") and (decoded := _decode_hex(body[1:])) is not None:
            out.append(decoded)
        else:
            # not a sequence we know: keep it verbatim rather than guess
            out.append(text[i : end + 1])
        i = end + 1
    return "".join(out)


def escape(text: str, enc: EncodingCharacters = DEFAULT_ENCODING) -> str:
    r"""Protect delimiters inside a value; line breaks become ``\.br\``.

    >>> print(escape("A|B^C&D~E\\F"))
    A\F\B\S\C\T\D\R\E\E\F
    """
    table = {
        enc.escape: f"{enc.escape}E{enc.escape}",
        enc.field: f"{enc.escape}F{enc.escape}",
        enc.component: f"{enc.escape}S{enc.escape}",
        enc.subcomponent: f"{enc.escape}T{enc.escape}",
        enc.repetition: f"{enc.escape}R{enc.escape}",
        "\n": f"{enc.escape}.br{enc.escape}",
        "\r": "",
    }
    return "".join(table.get(char, char) for char in text)
