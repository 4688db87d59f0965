"""The `$(name arg ...)` substitution language of ROS 2 launch files: parsing and evaluation.

The grammar follows ROS 2 launch's frontend grammar: a template is text with embedded
substitutions; a substitution is `$(` NAME, then zero or more arguments each preceded by
exactly one space, then `)`. An argument is a quoted template ('...' or "...", which may
hold spaces and substitutions) or a run of characters without spaces, quotes or
parentheses, which may itself hold substitutions (`$(var a)_$(var b)`). A backslash makes
the next character literal everywhere, as in ROS 2 (so `\\$(` is text, not a substitution).

Supported substitutions (a subset of ROS 2's, same meaning):
`var NAME [DEFAULT]`, `env NAME [DEFAULT]`, `find-pkg-share PKG`, `dirname`, `filename`,
`not X`, `and X Y`, `or X Y`, `equals X Y`, `not-equals X Y`.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
import yaml

from dave_core.launch.errors import LaunchError


@dataclass(frozen=True)
class Substitution:
    """One `$(name arg ...)`; each argument is itself a template."""

    name: str
    arguments: tuple[Template, ...]

    def __str__(self) -> str:
        rendered = ''.join(' ' + render(argument) for argument in self.arguments)
        return f'$({self.name}{rendered})'


Part = str | Substitution
Template = tuple[Part, ...]


def render(template: Template) -> str:
    """Source-like text of a template, for messages."""
    return ''.join(str(part) for part in template)


def has_substitutions(template: Template) -> bool:
    return any(isinstance(part, Substitution) for part in template)


@dataclass
class SubstitutionContext:
    """What substitutions can see: launch configurations, environment, current file."""

    configurations: Mapping[str, str]
    environ: Mapping[str, str]
    launch_file: Path
    find_package_share: Callable[[str], Path]

    def evaluate(self, template: Template) -> str:
        """Perform every substitution of `template`; raises LaunchError naming the culprit."""
        pieces = []
        for part in template:
            if isinstance(part, str):
                pieces.append(part)
            else:
                pieces.append(_SUBSTITUTIONS[part.name].perform(self, part))
        return ''.join(pieces)


def parse_bool(text: str) -> bool | None:
    """ROS 2's typed-bool coercion: '1'/'0' or a YAML boolean; None if it is neither."""
    if text == '1':
        return True
    if text == '0':
        return False
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return value if isinstance(value, bool) else None


def condition_holds(text: str) -> bool:
    """Truth of an `if`/`unless` expression, by ROS 2's rule: true/1 or false/0, any case."""
    folded = text.strip().lower()
    if folded in ('true', '1'):
        return True
    if folded in ('false', '0'):
        return False
    raise LaunchError(f"condition value {text!r} is neither true/1 nor false/0")


def parse_template(text: str) -> Template:
    """Parse `text` into literal strings and Substitution objects.

    Unknown substitution names and wrong argument counts are reported here, before
    anything is evaluated, so mistakes in branches that are switched off still surface.
    """
    return _TemplateParser(text).parse()


# --- parsing -------------------------------------------------------------------------

_NAME_RE = re.compile(r'[A-Za-z][A-Za-z0-9_-]*')
_ARGUMENT_STOP = frozenset(' \'"()')


class _TemplateParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> LaunchError:
        return LaunchError(f'{message} in {self.text!r}')

    def parse(self) -> Template:
        return self._scan('')

    def _scan(self, stops: str | frozenset[str]) -> Template:
        """Literal text and nested substitutions up to a character of `stops` or the end."""
        parts: list[Part] = []
        literal: list[str] = []
        while self.pos < len(self.text) and self.text[self.pos] not in stops:
            if self._at_escape():
                literal.append(self.text[self.pos + 1])
                self.pos += 2
            elif self.text.startswith('$(', self.pos):
                _flush(literal, parts)
                parts.append(self._substitution())
            else:
                literal.append(self.text[self.pos])
                self.pos += 1
        _flush(literal, parts)
        return tuple(parts)

    def _at_escape(self) -> bool:
        return self.text[self.pos] == '\\' and self.pos + 1 < len(self.text)

    def _substitution(self) -> Substitution:
        start = self.pos
        self.pos += 2
        match = _NAME_RE.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a substitution name after '$('")
        name = match.group()
        self.pos = match.end()
        arguments: list[Template] = []
        while True:
            if self.pos >= len(self.text):
                raise self.fail(f"unterminated substitution {self.text[start:]!r}")
            char = self.text[self.pos]
            if char == ')':
                self.pos += 1
                break
            if char != ' ':
                raise self.fail(f"expected ' ' or ')' after $({name} at column {self.pos + 1}")
            self.pos += 1
            arguments.append(self._argument(name))
        substitution = Substitution(name, tuple(arguments))
        _check_signature(substitution)
        return substitution

    def _argument(self, name: str) -> Template:
        if self.pos < len(self.text) and self.text[self.pos] in '\'"':
            return self._quoted(self.text[self.pos])
        parts = self._scan(_ARGUMENT_STOP)
        if not parts:
            raise self.fail(f'empty argument of $({name} at column {self.pos + 1} '
                            '(arguments are separated by exactly one space)')
        return parts

    def _quoted(self, quote: str) -> Template:
        start = self.pos
        self.pos += 1
        parts = self._scan(quote)
        if self.pos >= len(self.text):
            raise self.fail(f'unterminated quote starting at column {start + 1}')
        self.pos += 1
        return parts if parts else ('',)


def _flush(literal: list[str], parts: list[Part]) -> None:
    if literal:
        parts.append(''.join(literal))
        literal.clear()


def _check_signature(substitution: Substitution) -> None:
    spec = _SUBSTITUTIONS.get(substitution.name)
    if spec is None:
        known = ', '.join(sorted(_SUBSTITUTIONS))
        raise LaunchError(f'unknown substitution {str(substitution)!r} (supported: {known})')
    if not spec.min_args <= len(substitution.arguments) <= spec.max_args:
        raise LaunchError(f'{str(substitution)!r}: wrong number of arguments, '
                          f'expected {spec.usage}')


# --- evaluation ----------------------------------------------------------------------

@dataclass(frozen=True)
class _Spec:
    perform: Callable[[SubstitutionContext, Substitution], str]
    min_args: int
    max_args: int
    usage: str


def _var(context: SubstitutionContext, sub: Substitution) -> str:
    name = context.evaluate(sub.arguments[0])
    if name in context.configurations:
        return context.configurations[name]
    if len(sub.arguments) == 2:
        return context.evaluate(sub.arguments[1])
    known = ', '.join(sorted(context.configurations)) or 'none'
    raise LaunchError(f"{sub}: launch configuration {name!r} is not set "
                      f"(declare it with an 'arg' or 'let' first; set: {known})")


def _env(context: SubstitutionContext, sub: Substitution) -> str:
    name = context.evaluate(sub.arguments[0])
    if name in context.environ:
        return context.environ[name]
    if len(sub.arguments) == 2:
        return context.evaluate(sub.arguments[1])
    raise LaunchError(f'{sub}: environment variable {name!r} is not set and has no default')


def _find_pkg_share(context: SubstitutionContext, sub: Substitution) -> str:
    return str(context.find_package_share(context.evaluate(sub.arguments[0])))


def _dirname(context: SubstitutionContext, sub: Substitution) -> str:
    return str(context.launch_file.parent)


def _filename(context: SubstitutionContext, sub: Substitution) -> str:
    return str(context.launch_file)


def _bool_argument(context: SubstitutionContext, sub: Substitution, index: int) -> bool:
    text = context.evaluate(sub.arguments[index])
    value = parse_bool(text)
    if value is None:
        raise LaunchError(f'{sub}: {text!r} is not a boolean (true/false/1/0)')
    return value


def _not(context: SubstitutionContext, sub: Substitution) -> str:
    return str(not _bool_argument(context, sub, 0)).lower()


def _and(context: SubstitutionContext, sub: Substitution) -> str:
    return str(_bool_argument(context, sub, 0) and _bool_argument(context, sub, 1)).lower()


def _or(context: SubstitutionContext, sub: Substitution) -> str:
    return str(_bool_argument(context, sub, 0) or _bool_argument(context, sub, 1)).lower()


def _same(left: str, right: str) -> bool:
    # ROS 2 compares booleans as booleans and numbers with a tolerance, the rest as text.
    flags = ('true', 'false', '1', '0')
    if left.lower() in flags and right.lower() in flags:
        return (left.lower() in ('true', '1')) == (right.lower() in ('true', '1'))
    try:
        return math.isclose(float(left), float(right))
    except ValueError:
        return left == right


def _equals(context: SubstitutionContext, sub: Substitution) -> str:
    left, right = (context.evaluate(argument) for argument in sub.arguments)
    return str(_same(left, right)).lower()


def _not_equals(context: SubstitutionContext, sub: Substitution) -> str:
    left, right = (context.evaluate(argument) for argument in sub.arguments)
    return str(not _same(left, right)).lower()


_SUBSTITUTIONS: dict[str, _Spec] = {
    'var': _Spec(_var, 1, 2, '$(var NAME [DEFAULT])'),
    'env': _Spec(_env, 1, 2, '$(env NAME [DEFAULT])'),
    'find-pkg-share': _Spec(_find_pkg_share, 1, 1, '$(find-pkg-share PACKAGE)'),
    'dirname': _Spec(_dirname, 0, 0, '$(dirname)'),
    'filename': _Spec(_filename, 0, 0, '$(filename)'),
    'not': _Spec(_not, 1, 1, '$(not VALUE)'),
    'and': _Spec(_and, 2, 2, '$(and LEFT RIGHT)'),
    'or': _Spec(_or, 2, 2, '$(or LEFT RIGHT)'),
    'equals': _Spec(_equals, 2, 2, '$(equals LEFT RIGHT)'),
    'not-equals': _Spec(_not_equals, 2, 2, '$(not-equals LEFT RIGHT)'),
}
