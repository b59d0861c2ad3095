"""Static checking of policy conditions against the facts they can see.

A condition is parsed into a small syntax tree (CEL's grammar, which the runtime
has already accepted) and every branch is checked, whether or not a sample request
would reach it: each field path against the declared facts, each function against
what it accepts, each operator against its operands' types. The tree's depth, the
nesting of comprehensions and a worst-case cost are bounded too, so that no
published condition can make a request slow.

The declared facts are built from the very values the evaluation hands to CEL
(`schema_of`), so the checker and the runtime cannot drift apart.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 32  # nesting of the syntax tree
MAX_COMPREHENSION_DEPTH = 2  # .all(), .exists(), .map() … inside one another
MAX_COST = 100_000  # worst-case evaluation steps of one condition
MAX_LENGTH = 4_000  # characters of one condition
DEFAULT_LIST_BOUND = 50  # a request's lists hold at most this many items (intake says so)


# -- types ------------------------------------------------------------------------


@dataclass(frozen=True)
class Type:
    name: str  # int uint double string bool bytes null timestamp duration dyn type list map record
    elem: Type | None = None  # list element, map value
    key: Type | None = None  # map key
    fields: tuple[tuple[str, Type], ...] = ()  # record fields
    path: str = ""  # a record's place in the facts, for messages
    bound: int = DEFAULT_LIST_BOUND  # most items a list or map holds

    def __str__(self) -> str:
        if self.name == "list":
            return f"list({self.elem})"
        if self.name == "map":
            return f"map({self.key}, {self.elem})"
        if self.name == "record":
            return f"the facts {self.path}" if self.path else "a record"
        return self.name

    def field(self, name: str) -> Type | None:
        return dict(self.fields).get(name)


INT, UINT, DOUBLE = Type("int"), Type("uint"), Type("double")
STRING, BOOL, BYTES, NULL = Type("string"), Type("bool"), Type("bytes"), Type("null")
TIMESTAMP, DURATION, DYN, TYPE = Type("timestamp"), Type("duration"), Type("dyn"), Type("type")
NUMBERS = {"int", "uint", "double"}


def list_of(elem: Type, bound: int = DEFAULT_LIST_BOUND) -> Type:
    return Type("list", elem=elem, bound=bound)


def schema_of(value: Any, path: str) -> Type:
    """The type of a plain value as CEL sees it; dicts become records with their fields."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    if isinstance(value, list | tuple):
        elems = {schema_of(v, path) for v in value}
        return list_of(elems.pop() if len(elems) == 1 else DYN)
    if isinstance(value, dict):
        fields = tuple((k, schema_of(v, f"{path}.{k}")) for k, v in value.items())
        return Type("record", fields=fields, path=path)
    return DYN


# -- syntax -------------------------------------------------------------------------


@dataclass
class Node:
    kind: str  # lit ident select call index list map unary binary cond
    pos: int
    value: Any = None  # literal value, identifier or field or function name, operator
    args: list[Node] = field(default_factory=list)  # operands / target first for calls
    type: Type | None = None  # literals' type
    receiver: bool = False  # a call written `x.f(…)`


class SyntaxProblem(ValueError):
    def __init__(self, pos: int, message: str):
        self.pos, self.message = pos, message
        super().__init__(message)


_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>[rRbB]{0,2}(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"
                           |'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+[uU]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!+\-*/%?:.,()\[\]{}])
    """,
    re.VERBOSE | re.DOTALL,
)
_RELATIONS = {"<", "<=", ">", ">=", "==", "!=", "in"}


def _tokens(source: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise SyntaxProblem(pos, f"unexpected character {source[pos]!r}")
        kind = match.lastgroup
        if kind != "space":
            tokens.append((kind, match.group(), pos))
        pos = match.end()
    tokens.append(("end", "", len(source)))
    return tokens


class _Parser:
    """CEL's grammar by recursive descent (the spec's Expr, ConditionalOr, … Primary)."""

    def __init__(self, source: str):
        self.tokens, self.i, self.depth = _tokens(source), 0, 0

    def parse(self) -> Node:
        node = self.expr()
        kind, text, pos = self.tokens[self.i]
        if kind != "end":
            raise SyntaxProblem(pos, f"unexpected {text!r}")
        return node

    def peek(self) -> str:
        kind, text, _ = self.tokens[self.i]
        return text if kind in ("op", "ident") else kind

    def take(self, expected: str | None = None) -> tuple[str, str, int]:
        token = self.tokens[self.i]
        if expected is not None and self.peek() != expected:
            raise SyntaxProblem(token[2], f"expected {expected!r}")
        self.i += 1
        return token

    def nested(self, parse):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SyntaxProblem(self.tokens[self.i][2], f"nests deeper than {MAX_DEPTH} levels")
        try:
            return parse()
        finally:
            self.depth -= 1

    def expr(self) -> Node:
        return self.nested(self._conditional)

    def _conditional(self) -> Node:
        node = self._binary(0)
        if self.peek() == "?":
            pos = self.take()[2]
            yes = self._binary(0)
            self.take(":")
            return Node("cond", pos, args=[node, yes, self.expr()])
        return node

    _LEVELS = (("||",), ("&&",), tuple(_RELATIONS), ("+", "-"), ("*", "/", "%"))

    def _binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self._unary()
        node = self._binary(level + 1)
        while self.peek() in self._LEVELS[level]:
            _, op, pos = self.take()
            node = Node("binary", pos, op, [node, self.nested(lambda: self._binary(level + 1))])
        return node

    def _unary(self) -> Node:
        if self.peek() in ("!", "-"):
            _, op, pos = self.take()
            operand = self.nested(self._unary)
            if op == "-" and operand.kind == "lit" and operand.type in (INT, DOUBLE):
                return Node("lit", pos, -operand.value, type=operand.type)
            return Node("unary", pos, op, [operand])
        return self._member()

    def _member(self) -> Node:
        node = self._primary()
        while self.peek() in (".", "["):
            _, op, pos = self.take()
            if op == ".":
                _, name, pos = self.take()
                if self.peek() == "(":
                    node = Node("call", pos, name, [node, *self._arguments(")")], receiver=True)
                else:
                    node = Node("select", pos, name, [node])
            else:
                index = self.expr()
                self.take("]")
                node = Node("index", pos, args=[node, index])
        return node

    def _arguments(self, close: str) -> list[Node]:
        self.take()
        items = []
        while self.peek() != close:
            items.append(self.expr())
            if self.peek() != ",":
                break
            self.take()
        self.take(close)
        return items

    def _primary(self) -> Node:
        kind, text, pos = self.tokens[self.i]
        if kind == "number":
            self.take()
            return _number(text, pos)
        if kind == "string":
            self.take()
            return _string(text, pos)
        if kind == "ident":
            self.take()
            if text in ("true", "false"):
                return Node("lit", pos, text == "true", type=BOOL)
            if text == "null":
                return Node("lit", pos, None, type=NULL)
            if self.peek() == "(":
                return Node("call", pos, text, self._arguments(")"))
            return Node("ident", pos, text)
        if text == "(":
            self.take()
            node = self.expr()
            self.take(")")
            return node
        if text == "[":
            return Node("list", pos, args=self._arguments("]"))
        if text == "{":
            self.take()
            entries = []
            while self.peek() != "}":
                key = self.expr()
                self.take(":")
                entries += [key, self.expr()]
                if self.peek() != ",":
                    break
                self.take()
            self.take("}")
            return Node("map", pos, args=entries)
        raise SyntaxProblem(pos, f"unexpected {text!r}" if text else "the condition ends early")


def _number(text: str, pos: int) -> Node:
    if text[-1] in "uU":
        return Node("lit", pos, int(text[:-1], 0), type=UINT)
    if text.lower().startswith("0x"):
        return Node("lit", pos, int(text, 16), type=INT)
    if any(c in text for c in ".eE"):
        return Node("lit", pos, float(text), type=DOUBLE)
    return Node("lit", pos, int(text), type=INT)


def _string(text: str, pos: int) -> Node:
    prefix = re.match(r"[rRbB]*", text).group()
    body = text[len(prefix) :]
    quote = 3 if body[:3] in ("'''", '"""') else 1
    value = body[quote:-quote]
    if "r" not in prefix.lower():
        value = re.sub(r"\\(.)", r"\1", value)
    return Node("lit", pos, value, type=BYTES if "b" in prefix.lower() else STRING)


# -- checking ----------------------------------------------------------------------

_PREDICATE_MACROS = {"all", "exists", "exists_one"}
_MACROS = _PREDICATE_MACROS | {"map", "filter"}
_CONVERSIONS = {
    "int": (INT, {"int", "uint", "double", "string", "timestamp"}),
    "uint": (UINT, {"int", "uint", "double", "string"}),
    "double": (DOUBLE, {"int", "uint", "double", "string"}),
    "string": (STRING, {"int", "uint", "double", "string", "bool", "bytes", "timestamp",
                        "duration"}),
    "bool": (BOOL, {"bool", "string"}),
    "bytes": (BYTES, {"bytes", "string"}),
    "timestamp": (TIMESTAMP, {"string", "timestamp", "int"}),
    "duration": (DURATION, {"string", "duration"}),
}  # fmt: skip
_STRING_TESTS = {"contains", "startsWith", "endsWith", "matches"}
_TIME_PARTS = {
    "getFullYear", "getMonth", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getDate",
    "getHours", "getMinutes", "getSeconds", "getMilliseconds",
}  # fmt: skip


@dataclass(frozen=True)
class TypeProblem:
    pos: int
    message: str


class _Checker:
    def __init__(self, env: dict[str, Type]):
        self.env = env
        self.problems: list[TypeProblem] = []

    def fail(self, node: Node, message: str) -> Type:
        self.problems.append(TypeProblem(node.pos, message))
        return DYN

    def check(self, node: Node, scope: dict[str, Type], depth: int = 0) -> tuple[Type, int]:
        """The node's type and its worst-case cost in evaluation steps."""
        method = getattr(self, f"_{node.kind}")
        return method(node, scope, depth)

    def _lit(self, node, scope, depth):
        return node.type, 1

    def _ident(self, node, scope, depth):
        if node.value in scope:
            return scope[node.value], 1
        known = ", ".join(sorted(scope))
        return self.fail(node, f"'{node.value}' is not known here; conditions see {known}"), 1

    def _path(self, node: Node) -> str:
        if node.kind == "ident":
            return node.value
        if node.kind == "select":
            return f"{self._path(node.args[0])}.{node.value}"
        return "the value"

    def _select(self, node, scope, depth):
        operand, cost = self.check(node.args[0], scope, depth)
        return self._field(node, operand, node.value), cost + 1

    def _field(self, node: Node, operand: Type, name: str) -> Type:
        if operand.name == "record":
            found = operand.field(name)
            if found is not None:
                return found
            names = [n for n, _ in operand.fields]
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; it has {', '.join(names)}"
            return self.fail(node, f"{operand.path} has no field '{name}'{hint}")
        if operand.name == "map":
            return operand.elem
        if operand.name == "dyn":
            return DYN
        return self.fail(node, f"{self._path(node.args[0])} is {operand}, which has no fields")

    def _index(self, node, scope, depth):
        (operand, c1), (index, c2) = (self.check(a, scope, depth) for a in node.args)
        cost = c1 + c2 + 1
        if operand.name == "list":
            if index.name not in ("int", "uint", "dyn"):
                self.fail(node.args[1], f"a list is indexed by a number, not {index}")
            return operand.elem, cost
        if operand.name == "record" and node.args[1].kind == "lit" and index == STRING:
            return self._field(node, operand, node.args[1].value), cost
        if operand.name == "map":
            return operand.elem, cost
        if operand.name in ("dyn", "record"):
            return DYN, cost
        return self.fail(node, f"{operand} cannot be indexed"), cost

    def _list(self, node, scope, depth):
        checked = [self.check(a, scope, depth) for a in node.args]
        elems = {t for t, _ in checked}
        elem = elems.pop() if len(elems) == 1 else DYN
        return list_of(elem, max(len(node.args), 1)), sum(c for _, c in checked) + 1

    def _map(self, node, scope, depth):
        checked = [self.check(a, scope, depth) for a in node.args]
        keys = {t for t, _ in checked[0::2]}
        values = {t for t, _ in checked[1::2]}
        key = keys.pop() if len(keys) == 1 else DYN
        value = values.pop() if len(values) == 1 else DYN
        bound = max(len(node.args) // 2, 1)
        return Type("map", elem=value, key=key, bound=bound), sum(c for _, c in checked) + 1

    def _unary(self, node, scope, depth):
        operand, cost = self.check(node.args[0], scope, depth)
        if node.value == "!":
            self._expect_bool(node.args[0], operand, "'!'")
            return BOOL, cost + 1
        if operand.name not in ("int", "double", "dyn"):
            self.fail(node, f"'-' needs a number, not {operand}")
        return operand, cost + 1

    def _expect_bool(self, node: Node, type_: Type, where: str) -> None:
        if type_.name not in ("bool", "dyn"):
            self.fail(node, f"{where} needs true or false, but {self._describe(node)} is {type_}")

    def _describe(self, node: Node) -> str:
        return self._path(node) if node.kind in ("ident", "select") else "this part"

    def _binary(self, node, scope, depth):
        (left, c1), (right, c2) = (self.check(a, scope, depth) for a in node.args)
        cost, op = c1 + c2 + 1, node.value
        if op in ("&&", "||"):
            self._expect_bool(node.args[0], left, f"'{op}'")
            self._expect_bool(node.args[1], right, f"'{op}'")
            return BOOL, cost
        if op == "in":
            if right.name == "list":
                self._comparable(node, left, right.elem, "in")
            elif right.name == "map":
                self._comparable(node, left, right.key, "in")
            elif right.name == "record":
                self._comparable(node, left, STRING, "in")
            elif right.name != "dyn":
                self.fail(node.args[1], f"'in' needs a list or a map on its right, not {right}")
            return BOOL, cost
        if op in _RELATIONS:
            self._comparable(node, left, right, op)
            if op not in ("==", "!=") and left.name in ("list", "map", "record", "null"):
                self.fail(node, f"'{op}' cannot order {left}")
            return BOOL, cost
        return self._arithmetic(node, op, left, right), cost

    def _comparable(self, node: Node, left: Type, right: Type, op: str) -> None:
        if "dyn" in (left.name, right.name) or (left.name in NUMBERS and right.name in NUMBERS):
            return
        if left.name == right.name or "null" in (left.name, right.name) and op in ("==", "!="):
            return
        self.fail(node, f"'{op}' compares {left} with {right}, which never match")

    def _arithmetic(self, node: Node, op: str, left: Type, right: Type) -> Type:
        if "dyn" in (left.name, right.name):
            return right if left.name == "dyn" else left
        same = left.name == right.name
        if same and left.name in NUMBERS:
            return left
        if op == "+" and same and left.name in ("string", "bytes", "list", "duration"):
            return left if left.name != "list" else list_of(left.elem, left.bound + right.bound)
        if op in ("+", "-") and {left.name, right.name} == {"timestamp", "duration"}:
            return TIMESTAMP
        if op == "-" and same and left.name in ("timestamp", "duration"):
            return DURATION
        if left.name in NUMBERS and right.name in NUMBERS:
            return self.fail(
                node,
                f"'{op}' mixes {left} and {right}; write the number as {left} "
                "(for example 25000.0 for a double) or convert it with int() or double()",
            )
        return self.fail(node, f"'{op}' is not defined for {left} and {right}")

    def _cond(self, node, scope, depth):
        (test, c0), (yes, c1), (no, c2) = (self.check(a, scope, depth) for a in node.args)
        self._expect_bool(node.args[0], test, "'? :'")
        if str(yes) != str(no) and "dyn" not in (yes.name, no.name):
            self.fail(node, f"the two branches of '? :' differ: {yes} and {no}")
        return yes, c0 + max(c1, c2) + 1

    def _call(self, node, scope, depth):
        name = node.value
        if name == "has":
            return self._has(node, scope, depth)
        if node.receiver and name in _MACROS:
            return self._comprehension(node, scope, depth)
        checked = [self.check(a, scope, depth) for a in node.args]
        types = [t for t, _ in checked]
        cost = sum(c for _, c in checked) + 1
        return self._function(node, name, types), cost

    def _function(self, node: Node, name: str, types: list[Type]) -> Type:
        arity = len(types)
        if name == "size" and arity == 1:
            if types[0].name not in ("string", "bytes", "list", "map", "dyn"):
                self.fail(node, f"size() needs text, a list or a map, not {types[0]}")
            return INT
        if name in _STRING_TESTS and node.receiver and arity == 2:
            for t, arg in zip(types, node.args, strict=True):
                if t.name not in ("string", "dyn"):
                    self.fail(arg, f"{name}() works on text, not {t}")
            return BOOL
        if name in _CONVERSIONS and arity == 1 and not node.receiver:
            result, accepted = _CONVERSIONS[name]
            if types[0].name not in accepted | {"dyn"}:
                self.fail(node, f"{name}() cannot convert {types[0]}")
            return result
        if name == "dyn" and arity == 1:
            return DYN
        if name == "type" and arity == 1:
            return TYPE
        if name in _TIME_PARTS and node.receiver and arity in (1, 2):
            if types[0].name not in ("timestamp", "duration", "dyn"):
                self.fail(node, f"{name}() needs a timestamp, not {types[0]}")
            return INT
        return self.fail(node, f"{name}() with {arity - node.receiver} argument(s) is unknown")

    def _has(self, node, scope, depth):
        if len(node.args) != 1 or node.args[0].kind != "select":
            return self.fail(node, "has() takes one field, as in has(request.scope.seats)"), 1
        target = node.args[0]
        operand, cost = self.check(target.args[0], scope, depth)
        if operand.name == "record":
            self._field(target, operand, target.value)
        elif operand.name not in ("map", "dyn"):
            self.fail(target, f"{self._path(target.args[0])} is {operand}, which has no fields")
        return BOOL, cost + 1

    def _comprehension(self, node, scope, depth):
        name, (target, *rest) = node.value, node.args
        if depth + 1 > MAX_COMPREHENSION_DEPTH:
            self.fail(node, f"nests more than {MAX_COMPREHENSION_DEPTH} of all/exists/map/filter")
            return DYN, MAX_COST + 1
        arity = 3 if name == "map" and len(rest) == 3 else 2
        if len(rest) != arity or rest[0].kind != "ident":
            return self.fail(node, f"{name}() takes a variable name and an expression"), 1
        collection, cost = self.check(target, scope, depth)
        if collection.name == "list":
            item, bound = collection.elem, collection.bound
        elif collection.name == "map":
            item, bound = collection.key, collection.bound
        elif collection.name == "dyn":
            item, bound = DYN, DEFAULT_LIST_BOUND
        else:
            return self.fail(node, f"{name}() works on a list or a map, not {collection}"), cost
        inner = {**scope, rest[0].value: item}
        body = [self.check(e, inner, depth + 1) for e in rest[1:]]
        cost += bound * (sum(c for _, c in body) + 1)
        if name in _PREDICATE_MACROS or name == "filter" or arity == 3:
            self._expect_bool(rest[1], body[0][0], f"{name}()")
        if name in _PREDICATE_MACROS:
            return BOOL, cost
        if name == "filter":
            return list_of(item, bound), cost
        return list_of(body[-1][0], bound), cost


def check(source: str, env: dict[str, Type]) -> list[str]:
    """Every problem of `source` against the variables of `env`, each with its column."""
    if len(source) > MAX_LENGTH:
        return [f"is longer than {MAX_LENGTH} characters"]
    try:
        tree = _Parser(source).parse()
    except SyntaxProblem as problem:
        return [_at(source, problem.pos, problem.message)]
    checker = _Checker(env)
    result, cost = checker.check(tree, dict(env))
    problems = [_at(source, p.pos, p.message) for p in checker.problems]
    if not problems and result.name not in ("bool", "dyn"):
        problems.append(f"must be true or false, but is {result}")
    if not problems and cost > MAX_COST:
        problems.append(
            f"may take up to {cost:,} steps for one request (at most {MAX_COST:,}); "
            "iterate over fewer or smaller lists"
        )
    return list(dict.fromkeys(problems))


def _at(source: str, pos: int, message: str) -> str:
    line = source.count("\n", 0, pos) + 1
    column = pos - (source.rfind("\n", 0, pos) + 1) + 1
    where = f"column {column}" if line == 1 else f"line {line}, column {column}"
    return f"{where}: {message}"
