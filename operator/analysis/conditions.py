"""Safe evaluation of `successCondition` / `failureCondition` with CEL (cel-python).

User-written conditions run inside the operator, so they must not be Python `eval`: CEL has no
side effects, no imports and always terminates. The only variable is `result`: a number when the
query returns a scalar, a list of numbers when it returns a vector (Argo Rollouts' convention, so
`result[0] < 0.05`, `result.all(x, x < 0.05)`, `result.exists(x, x > 1)` work). NaN never reaches
a condition: the caller turns it into an Inconclusive measurement first, because `NaN < 0.05` is
quietly false in CEL and would read as a failure.

`compile_condition` finds syntax errors, unknown variables and non-boolean expressions up front so
the operator can reject a bad spec before the first measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import celpy
import lark
from celpy import celtypes

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
            raise ConditionError(
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
    except celpy.CELParseError as error:
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
    for sample in (1.0, [1.0]):
        try:
            condition.holds(sample)
        except NotBooleanError:
            raise
        except ConditionError:
            continue


def _free_identifiers(ast: lark.Tree) -> set[str]:
    used: set[str] = set()
    bound: set[str] = set()
    for node in ast.iter_subtrees():
        if node.data == "ident":
            used.add(str(node.children[0]))
        elif node.data == "member_dot_arg" and str(node.children[1]) in _BINDING_MACROS:
            bound.update(_first_argument_name(node))
    return used - bound


def _first_argument_name(macro: lark.Tree) -> set[str]:
    arguments = macro.children[2] if len(macro.children) > 2 else None
    if not isinstance(arguments, lark.Tree) or not arguments.children:
        return set()
    first = arguments.children[0]
    if not isinstance(first, lark.Tree):
        return set()
    return {str(leaf.children[0]) for leaf in first.iter_subtrees() if leaf.data == "ident"}


def _to_cel(result: Result) -> celtypes.Value:
    if isinstance(result, float | int):
        return celtypes.DoubleType(float(result))
    return celtypes.ListType([celtypes.DoubleType(float(value)) for value in result])


def _describe(result: Result) -> str:
    if isinstance(result, float | int):
        return f"result={float(result):g}"
    return (
        f"result=[{', '.join(f'{float(value):g}' for value in result)}] (a vector: use result[0] or "
        f"result.all(x, ...))"
    )


def _eval_reason(error: Exception) -> str:
    reason = str(error.args[0]) if error.args else repr(error)
    if "no matching overload" in reason or "not iterable" in reason or "not subscriptable" in reason:
        return "the operation does not apply to this type of result"
    # cel-python appends the whole activation to its messages; the first clause is the reason.
    return reason.split(" (in activation", 1)[0]
