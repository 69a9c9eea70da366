"""Safe evaluation of `successCondition` / `failureCondition` with CEL (cel-python).

User-written conditions run inside the operator, so they must not be Python `eval`: CEL has no
side effects, no imports and always terminates. The only variable is `result`. With one value (a
scalar, or a vector of one series: the usual `sum(...)`) it is a number that can also be indexed,
so both `result < 0.05` and Argo Rollouts' `result[0] < 0.05` work. With several series it is a
list: `result.all(x, x < 0.05)`, `result.exists(x, x > 1)`, `result[1]`. NaN never reaches
a condition: the caller turns it into an Inconclusive measurement first, because `NaN < 0.05` is
quietly false in CEL and would read as a failure.

`compile_condition` finds syntax errors, unknown variables and non-boolean expressions up front so
the operator can reject a bad spec before the first measurement.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import celpy
import lark
from celpy import celtypes
from celpy.celparser import CELParseError

RESULT_VARIABLE = "result"
# CEL macros whose first argument declares a loop variable, e.g. `result.all(x, x < 1)`.
_BINDING_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_ENVIRONMENT = celpy.Environment()

Result = float | Sequence[float]


class ConditionError(ValueError):
    """A condition does not compile, or failed while being evaluated."""


class NotBooleanError(ConditionError):
    """A condition evaluated to something other than true or false."""


@dataclass(frozen=True)
class Condition:
    """A compiled condition; `field` names where it came from, for error messages."""

    source: str
    field: str
    program: celpy.Runner

    def holds(self, result: Result) -> bool:
        """Evaluates the condition; raises ConditionError if it errs or is not a boolean."""
        value = self._evaluate(result)
        if not isinstance(value, celtypes.BoolType):
            raise NotBooleanError(
                f"{self.field} {self.source!r} must be true or false, got {value!r} for {_describe(result)}"
            )
        return bool(value)

    def _evaluate(self, result: Result) -> object:
        try:
            return self.program.evaluate({RESULT_VARIABLE: _to_cel(result)})
        # cel-python lets plain Python errors (TypeError from a macro over a number) escape.
        except Exception as error:
            raise ConditionError(
                f"{self.field} {self.source!r} failed on {_describe(result)}: {_eval_reason(error)}"
            ) from error


def compile_condition(source: str, field: str) -> Condition:
    """Parses and checks a condition; raises ConditionError naming the field and the reason."""
    if not source.strip():
        raise ConditionError(f"{field} is empty")
    try:
        ast = _ENVIRONMENT.compile(source)
    except CELParseError as error:
        raise ConditionError(
            f"{field} {source!r} is not a valid CEL expression: {str(error).strip()}"
        ) from error
    unknown = sorted(_free_identifiers(ast) - {RESULT_VARIABLE})
    if unknown:
        raise ConditionError(
            f"{field} {source!r} uses unknown variable(s) {', '.join(unknown)}; "
            f"the only variable is {RESULT_VARIABLE!r}"
        )
    condition = Condition(source=source, field=field, program=_ENVIRONMENT.program(ast))
    _check_boolean(condition)
    return condition


def has_nan(result: Result) -> bool:
    values = [result] if isinstance(result, float | int) else list(result)
    return any(math.isnan(value) for value in values)


def _check_boolean(condition: Condition) -> None:
    """Rejects expressions that give a non-boolean for a sample scalar or vector result.

    CEL here has no static types, so the check evaluates sample results. Errors while evaluating a
    sample are not held against the expression: `result[1] > 1` is fine for a two-series vector.
    """
    for sample in (1.0, [1.0, 2.0]):
        try:
            condition.holds(sample)
        except NotBooleanError:
            raise
        except ConditionError:
            continue


def _free_identifiers(ast: lark.Tree[lark.Token]) -> set[str]:
    used: set[str] = set()
    bound: set[str] = set()
    for node in ast.iter_subtrees():
        if node.data == "ident":
            used.add(str(node.children[0]))
        elif node.data == "member_dot_arg" and str(node.children[1]) in _BINDING_MACROS:
            bound.update(_first_argument_name(node))
    return used - bound


def _first_argument_name(macro: lark.Tree[lark.Token]) -> set[str]:
    arguments = macro.children[2] if len(macro.children) > 2 else None
    if not isinstance(arguments, lark.Tree) or not arguments.children:
        return set()
    first = arguments.children[0]
    if not isinstance(first, lark.Tree):
        return set()
    return {str(leaf.children[0]) for leaf in first.iter_subtrees() if leaf.data == "ident"}


class _OneValue(celtypes.DoubleType):
    """A double that also behaves as a one-element list (`result[0]`, `size(result)`, macros)."""

    def __getitem__(self, index: object) -> celtypes.DoubleType:
        if index != 0:
            raise IndexError(f"index {index} out of range: the query returned one value")
        return celtypes.DoubleType(self)

    def __iter__(self) -> Iterator[celtypes.DoubleType]:
        yield celtypes.DoubleType(self)

    def __len__(self) -> int:
        return 1


def _to_cel(result: Result) -> celtypes.Value:
    values = [float(result)] if isinstance(result, float | int) else [float(value) for value in result]
    if len(values) == 1:
        return _OneValue(values[0])
    return celtypes.ListType([celtypes.DoubleType(value) for value in values])


def _describe(result: Result) -> str:
    if isinstance(result, float | int):
        return f"result={float(result):g}"
    values = ", ".join(f"{float(value):g}" for value in result)
    if len(result) == 1:
        return f"result={values}"
    return f"result=[{values}] (several series: use result[i] or result.all(x, ...))"


def _eval_reason(error: Exception) -> str:
    reason = str(error.args[0]) if error.args else repr(error)
    # CELEvalError's args are (reason, Python exception type, that exception's args).
    if len(error.args) == 3 and isinstance(error.args[2], tuple) and error.args[2]:
        reason = f"{reason}: {error.args[2][0]}"
    if "no matching overload" in reason or "not iterable" in reason or "not subscriptable" in reason:
        return "the operation does not apply to this type of result"
    # cel-python appends the whole activation to its messages; the first clause is the reason.
    return reason.split(" (in activation", 1)[0]
