"""Expressions: native types where a user expects them, and no way out of the sandbox."""

from __future__ import annotations

import pytest

from flowboard.errors import ExpressionError
from flowboard.expressions import compile_string, compile_value, evaluate

SCOPE = {
    "item": {"email": "ada@example.com", "days": 12, "tags": ["a", "b"], "items": "key-not-method", "zip": "01234"},
    "items": [{"n": 1}, {"n": 2}],
    "nodes": {"Look up": {"items": [{"days_left": 3}]}, "lookup": {"items": [{"days_left": 3}]}},
}


def ev(text: str):  # type: ignore[no-untyped-def]
    return evaluate(compile_string(text), SCOPE)


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ item.email }}", "ada@example.com"),
    ("{{ item.days }}", 12),
    ("{{ item.days > 10 }}", True),
    ("{{ item.tags }}", ["a", "b"]),
    ("{{ item.zip }}", "01234"),  # text that looks like a number stays text
    ("{{ item.items }}", "key-not-method"),  # JSON keys win over dict methods
    ("{{ nodes['Look up'].items[0].days_left }}", 3),
    ("{{ nodes.lookup.items[0].days_left + 1 }}", 4),
    ("{{ items | map(attribute='n') | sum }}", 3),
    ("Hello {{ item.email }}!", "Hello ada@example.com!"),
    ("{{ item.missing }}", None),
    ("[{{ item.missing }}]", "[]"),
    ("{{ item.email | upper }}", "ADA@EXAMPLE.COM"),
    ("{{ {'a': item.days} }}", {"a": 12}),
    ("{{ range(3) | list }}", [0, 1, 2]),
    ("{{ dict(a=1) }}", {"a": 1}),
    ("<b>{{ '<script>&\"' | e }}</b>", "<b>&lt;script&gt;&amp;&#34;</b>"),  # for an email's HTML part
    ("{{ item.missing | escape }}", ""),
    ("{{ item.days | e }}", "12"),
])
def test_values(text: str, expected: object) -> None:
    value = ev(text)
    assert value == expected
    assert type(value) is type(expected), "escaped text is plain str, not markupsafe.Markup"


def test_nested_config_values_are_compiled_once_and_rendered_per_scope() -> None:
    fn = compile_value({"to": "{{ item.email }}", "fixed": 1, "list": ["x", "{{ item.days }}"]})
    assert fn is not None
    assert evaluate(fn, SCOPE) == {"to": "ada@example.com", "fixed": 1, "list": ["x", 12]}
    assert compile_value({"plain": "no expression", "n": [1, 2]}) is None


def test_syntax_error_is_reported_in_plain_words() -> None:
    with pytest.raises(ExpressionError, match="the expression is not closed: end it with }}"):
        compile_string("{{ item.email ")


ESCAPES = [
    "{{ item.__class__ }}",
    "{{ item.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ items.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__ }}",
    "{{ '{0.__class__}'.format(item) }}",
    "{{ 'x'.format_map(item) }}",
    "{{ item.email.__add__ }}",
    "{{ range.__self__ }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ (item|attr('__class__')) }}",
    "{{ item.pop('email') }}",
    "{{ items.append(1) }}",
    "{{ range(10**9) | list }}",
    "{{ 'x' * 10**9 }}",
    "{{ [1] * 100000000 }}",
    "{{ 9 ** 9 ** 9 }}",
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_known_escape_payloads_are_refused(payload: str) -> None:
    before = {**SCOPE["item"]}
    try:
        value = ev(payload)
    except ExpressionError:
        value = None
    # Whatever came back must be plain data, never a class, function, module or the environment.
    assert value is None or isinstance(value, str | int | float | bool | list | dict), repr(value)
    text = repr(value)
    assert "class" not in text and "function" not in text and "module" not in text and "uid=" not in text
    assert SCOPE["item"] == before, "an expression changed the item"


def test_environment_and_files_are_out_of_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWBOARD_TEST_SECRET", "s3cret-value")
    for payload in ["{{ environ }}", "{{ os.environ }}", "{{ open('/etc/passwd').read() }}",
                    "{{ __import__('os').environ }}", "{% import 'os' as os %}{{ os }}",
                    "{% include '/etc/passwd' %}"]:
        try:
            value = ev(payload)
        except ExpressionError:
            continue
        assert "s3cret-value" not in repr(value) and "root:" not in repr(value)


_PATH_SCOPE = {
    "item": {"body": {"id": 7, "deep": {"x": [1, 2]}, "items": "a key", "keys": None}, "list": [{"a": 1}],
             "none": None, "text": "abc", "num": 3},
    "items": [{"n": 1}],
    "input": [],
    "nodes": {"Look up": {"items": [{"days_left": 3}]}},
}


@pytest.mark.parametrize("text", [
    "{{ item }}", "{{ item.body }}", "{{ item.body.id }}", "{{ item.body.deep.x }}", "{{ item.body.items }}",
    "{{ item.body.keys }}", "{{ item.missing }}", "{{ item.none }}", "{{item.text}}", "{{ item.num }}",
    "{{ items }}", "{{ nodes }}", "{{ input }}", "{{ true }}", "{{ null }}", "{{ nothing }}", "{{ item.list }}",
    "{{ item.body.values }}", "{{ item.text.upper }}", "{{ item.missing.deeper }}", "{{ item.none.x }}",
])
def test_plain_paths_read_like_jinja(text: str) -> None:
    """`{{ item.a.b }}` is read without Jinja: every answer and every error is the same as the sandbox's."""
    from flowboard import expressions

    expr = expressions._ENV.compile_expression(expressions._WHOLE.match(text).group(1).strip(),  # type: ignore[union-attr]
                                               undefined_to_none=False)

    def jinja() -> object:
        return evaluate(lambda scope: expressions._native(expr(**scope)), _PATH_SCOPE)

    try:
        want: object = jinja()
    except ExpressionError as exc:
        with pytest.raises(ExpressionError) as got:
            evaluate(compile_string(text), _PATH_SCOPE)
        assert str(got.value) == str(exc)
        return
    got_value = evaluate(compile_string(text), _PATH_SCOPE)
    if callable(want):
        assert callable(got_value)
        return
    assert got_value == want
    assert type(got_value) is type(want)


_TEXT_SCOPE = {
    "item": {"i": 7, "text": "abc", "f": 1.5, "flag": True, "none": None, "list": [1], "big": 10**30,
             "body": {"id": "x/y", "deep": {"n": -3}}, "long": "x" * 600_000},
    "items": [{"n": 1}],
}


@pytest.mark.parametrize("text", [
    "http://127.0.0.1:8099/slow?i={{ item.i }}", "{{ item.text }}-{{ item.i }}", "a{{item.f}}b",
    "/users/{{ item.body.id }}/{{ item.body.deep.n }}", "x{{ item.flag }}", "x{{ item.none }}", "x{{ item.list }}",
    "x{{ item.missing }}", "x{{ item.missing.deeper }}", "x{{ item.text.upper }}", "x{{ items }}", "x{{ nothing }}",
    "x{{ item.big }}", "{{ item.long }}{{ item.long }}", "a}}b{{ item.i }}", "{{- item.i }} x", "x {{ item.i -}} y",
    "a\r\nb{{ item.i }}", "{# note #}{{ item.i }}x", "é {{ item.text }} ü", "x{{ item.i }}\n", "{{ true }}x",
])
def test_text_with_paths_reads_like_jinja(text: str) -> None:
    """Text with `{{ item.a.b }}` in it is joined without Jinja: every answer and every error is the sandbox's."""
    from flowboard import expressions
    from flowboard.frozen import freeze

    template = expressions._ENV.from_string(text)
    for scope in (_TEXT_SCOPE, {"item": freeze(_TEXT_SCOPE["item"]), "items": _TEXT_SCOPE["items"]}):
        try:
            want = evaluate(lambda s: "".join(template.generate(s)), scope)
            if len(want) > expressions.MAX_OUTPUT:
                raise ExpressionError("this expression would produce more than 1 MB of text; make it produce less")
        except ExpressionError as exc:
            with pytest.raises(ExpressionError) as got:
                evaluate(compile_string(text), scope)
            assert str(got.value) == str(exc)
            continue
        assert evaluate(compile_string(text), scope) == want


def test_a_url_with_a_path_in_it_is_joined_without_a_template(monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTTP request node's `https://api/x?i={{ item.i }}`, evaluated once per item: a Jinja context per item was
    a twentieth of the fan-out flow's CPU."""
    import jinja2

    fn = compile_string("http://127.0.0.1:8099/slow?i={{ item.i }}&t={{ item.body.id }}")

    def no_template(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendered through a Jinja template")

    monkeypatch.setattr(jinja2.Template, "generate", no_template)
    assert evaluate(fn, _TEXT_SCOPE) == "http://127.0.0.1:8099/slow?i=7&t=x/y"
    with pytest.raises(ExpressionError, match="rendered through a Jinja template"):
        evaluate(fn, {"item": {"i": True, "body": {"id": 1}}})  # a bool: Jinja's own rendering
