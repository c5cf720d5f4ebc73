//! Behaviour tests of the templar as playbooks see it: rendering, native types, undefined
//! handling, every filter, test and lookup, lazy variables and template files.

use std::sync::Arc;

use minijinja::Value;
use serde_json::{json, Value as Json};

use super::*;

fn templar() -> Templar {
    Templar::new(Vec::new())
}

fn ctx(vars: Json) -> Value {
    from_json(&vars)
}

fn render(template: &str, vars: Json) -> String {
    templar()
        .render_str(template, &ctx(vars))
        .unwrap_or_else(|e| panic!("{template}: {}", e.message))
}

fn render_err(template: &str, vars: Json) -> TemplateError {
    match templar().render_str(template, &ctx(vars)) {
        Ok(out) => panic!("{template} rendered {out:?} but should fail"),
        Err(e) => e,
    }
}

fn eval(expr: &str, vars: Json) -> Json {
    templar()
        .eval(expr, &ctx(vars))
        .unwrap_or_else(|e| panic!("{expr}: {}", e.message))
}

fn check(expr: &str) -> bool {
    templar()
        .eval_bool(expr, &ctx(sample()))
        .unwrap_or_else(|e| panic!("{expr}: {}", e.message))
}

fn sample() -> Json {
    json!({
        "name": "web", "port": 8080, "flag": true, "nothing": null, "empty": "",
        "items": [3, 1, 2], "words": ["b", "a", "c"], "mode": "0755",
        "user": {"name": "ann", "groups": ["adm", "web"], "shell": "/bin/bash"},
        "users": [{"name": "ann", "uid": 3, "admin": true}, {"name": "bob", "uid": 1, "admin": false}],
        "ok_result": {"changed": true, "failed": false, "rc": 0},
        "bad_result": {"changed": false, "failed": true},
        "skipped_result": {"skipped": true, "changed": false},
        "loop_result": {"results": [{"changed": false}, {"changed": true}]},
        "no_str": "no", "false_str": "False", "yes_str": "yes"
    })
}

#[test]
fn templar_is_shareable_between_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Templar>();
    assert_send_sync::<TemplateError>();
}

#[test]
fn plain_text_is_returned_untouched() {
    assert!(!Templar::is_template("just text with { braces }"));
    assert!(Templar::is_template("a {# comment #}"));
    assert_eq!(
        render("just text {not jinja}", json!({})),
        "just text {not jinja}"
    );
}

#[test]
fn output_uses_python_forms() {
    assert_eq!(
        render("{{ flag }} {{ nothing }} {{ 1.0 }}", sample()),
        "True None 1.0"
    );
    assert_eq!(render("{{ words }}", sample()), "['b', 'a', 'c']");
    assert_eq!(
        render("{{ user.groups }} {{ {'k': false} }}", sample()),
        "['adm', 'web'] {'k': False}"
    );
    assert_eq!(render("{{ [1, 2] | string }}", json!({})), "[1, 2]");
}

#[test]
fn whole_string_expression_keeps_native_type() {
    let t = templar();
    let vars = ctx(sample());
    assert_eq!(
        t.render_value(&json!("{{ [1, 2] }}"), &vars).unwrap(),
        json!([1, 2])
    );
    assert_eq!(t.render_value(&json!("{{ 5 }}"), &vars).unwrap(), json!(5));
    assert_eq!(
        t.render_value(&json!("{{ flag }}"), &vars).unwrap(),
        json!(true)
    );
    assert_eq!(
        t.render_value(&json!("{{ user }}"), &vars).unwrap()["groups"],
        json!(["adm", "web"])
    );
    assert_eq!(
        t.render_value(&json!("x{{ 5 }}"), &vars).unwrap(),
        json!("x5")
    );
    assert_eq!(
        t.render_value(&json!("{{ port }}-{{ name }}"), &vars)
            .unwrap(),
        json!("8080-web")
    );
    assert_eq!(
        t.render_value(&json!("{{- port -}}"), &vars).unwrap(),
        json!(8080)
    );
    assert_eq!(
        t.render_value(&json!("{{ mode }}"), &vars).unwrap(),
        json!("0755")
    );
    let tree = json!({"a": ["{{ port + 1 }}", "plain", {"b": "{{ name | upper }}"}], "n": 3});
    assert_eq!(
        t.render_value(&tree, &vars).unwrap(),
        json!({"a": [8081, "plain", {"b": "WEB"}], "n": 3})
    );
}

#[test]
fn undefined_variables_are_errors_that_name_them() {
    let cases = [
        ("{{ foo }}", "foo"),
        ("{{ foo.bar }}", "foo"),
        ("{{ user.missing }}", "user.missing"),
        ("{{ user.missing.deeper }}", "user.missing"),
        ("{% if foo %}x{% endif %}", "foo"),
        ("{% for x in foo %}{{ x }}{% endfor %}", "foo"),
        ("{{ foo | upper }}", "foo"),
        ("{{ foo | length }}", "foo"),
        ("{{ foo | to_json }}", "foo"),
        ("{{ foo + 1 }}", "foo"),
        ("{{ foo.bar | upper }}", "foo"),
    ];
    for (template, name) in cases {
        let error = render_err(template, sample());
        assert_eq!(
            error.undefined.as_deref(),
            Some(name),
            "{template}: {}",
            error.message
        );
        assert!(
            error.message.contains(&format!("'{name}' is undefined")),
            "{template}: {}",
            error.message
        );
    }
}

#[test]
fn undefined_in_expressions_is_named() {
    let t = templar();
    let vars = ctx(sample());
    for (expr, name) in [
        ("foo", "foo"),
        ("foo == 1", "foo"),
        ("user.nope", "user.nope"),
        ("foo and flag", "foo"),
    ] {
        let error = t.eval(expr, &vars).expect_err(expr);
        assert_eq!(
            error.undefined.as_deref(),
            Some(name),
            "{expr}: {}",
            error.message
        );
    }
    let error = t
        .render_value(&json!({"x": ["{{ missing_var }}"]}), &vars)
        .unwrap_err();
    assert_eq!(error.undefined.as_deref(), Some("missing_var"));
}

#[test]
fn guarded_undefined_passes() {
    let vars = sample();
    assert_eq!(render("{{ foo | default('x') }}", vars.clone()), "x");
    assert_eq!(render("{{ foo | d('y') }}", vars.clone()), "y");
    assert_eq!(render("{{ foo | default }}", vars.clone()), "");
    assert_eq!(
        render("{{ foo is defined }} {{ foo is undefined }}", vars.clone()),
        "False True"
    );
    assert_eq!(render("{{ user.missing | default(1) }}", vars.clone()), "1");
    assert_eq!(
        render("{{ user.missing.deeper | default(2) }}", vars.clone()),
        "2"
    );
    assert_eq!(
        render("{{ foo.bar | default('chained') }}", vars.clone()),
        "chained"
    );
    assert_eq!(
        render("{{ foo.bar.baz is defined }}", vars.clone()),
        "False"
    );
    assert_eq!(
        render(
            "{{ (foo.bar | default({})).x | default('z') }}",
            vars.clone()
        ),
        "z"
    );
    assert_eq!(
        render(
            "{% for u in users %}{{ u.opt.x | default('-') }}{{ u.name }};{% endfor %}",
            vars.clone()
        ),
        "-ann;-bob;"
    );
    assert_eq!(
        render(
            "{{ users[5].name | default('none') }} {{ users[0].name }}",
            vars.clone()
        ),
        "none ann"
    );
    assert_eq!(
        render(
            "{{ empty | default('e', true) }} {{ empty | default('e') }}|",
            vars.clone()
        ),
        "e |"
    );
    assert_eq!(render("{{ nothing | default('n') }}", vars.clone()), "None");
    assert_eq!(
        render(
            "{{ foo | default(none) }} {{ foo | default(default_value=3) }}",
            vars.clone()
        ),
        "None 3"
    );
    assert_eq!(render("{{ name | default('n') }}", vars.clone()), "web");
    assert_eq!(
        render(
            "{% if foo is defined and foo.bar %}y{% else %}n{% endif %}",
            vars.clone()
        ),
        "n"
    );
    assert!(!check("foo.bar is defined"));
    assert!(check("foo.bar is undefined"));
}

#[test]
fn chained_undefined_still_fails_when_used() {
    for template in [
        "{% if foo.bar %}x{% endif %}",
        "{{ foo.bar }}",
        "{% for x in foo.bar %}{% endfor %}",
        "{{ foo.bar | default(foo.baz) }}",
        "{{ foo.bar == 1 }}",
        "{{ foo.bar | default(1) }}{{ foo.x == 2 }}",
        "{{ foo.bar ~ 'x' }}",
    ] {
        let error = render_err(template, sample());
        assert_eq!(
            error.undefined.as_deref(),
            Some("foo"),
            "{template}: {}",
            error.message
        );
    }
}

#[test]
fn mandatory_names_the_variable() {
    let error = render_err("{{ foo | mandatory }}", sample());
    assert_eq!(error.message, "Mandatory variable 'foo' not defined.");
    assert_eq!(error.undefined.as_deref(), Some("foo"));
    let error = render_err("{{ user.pw | mandatory('set user.pw first') }}", sample());
    assert_eq!(error.message, "set user.pw first");
    assert_eq!(error.undefined.as_deref(), Some("user.pw"));
    assert_eq!(render("{{ name | mandatory }}", sample()), "web");
}

#[test]
fn syntax_errors_are_reported() {
    let error = render_err("{{ name | }}", sample());
    assert!(error.message.contains("syntax error"), "{}", error.message);
    assert_eq!(error.undefined, None);
    let error = render_err("{{ name | no_such_filter }}", sample());
    assert!(
        error.message.contains("no_such_filter") || error.message.contains("unknown filter"),
        "{}",
        error.message
    );
}

#[test]
fn python_methods_work() {
    assert_eq!(
        render("{{ name.startswith('we') }} {{ name.upper() }}", sample()),
        "True WEB"
    );
    assert_eq!(render("{{ 'a,b'.split(',') }}", json!({})), "['a', 'b']");
    assert_eq!(
        render(
            "{% for k, v in user.items() %}{{ k }};{% endfor %}",
            sample()
        ),
        "name;groups;shell;"
    );
    assert_eq!(render("{{ user.keys() | list | length }}", sample()), "3");
}

#[test]
fn basic_filters() {
    let v = sample();
    let cases = [
        ("{{ 'yes' | bool }} {{ 'On' | bool }} {{ 1 | bool }} {{ 'no' | bool }} {{ 'other' | bool }} {{ 2 | bool }}", "True True True False False False"),
        ("{{ mode | int }} {{ '0x1F' | int(base=16) }} {{ 'abc' | int }} {{ 'abc' | int(7) }} {{ '1.9' | int }} {{ 3.7 | int }}", "755 31 0 7 1 3"),
        ("{{ '1.5' | float }} {{ 'x' | float }} {{ 2 | float }}", "1.5 0.0 2.0"),
        ("{{ 5 | string }} {{ flag | string }}", "5 True"),
        ("{{ ' Ab ' | lower | trim }} {{ 'ab' | upper }} {{ 'aXa' | replace('X', '-') }}", "ab AB a-a"),
        ("{{ 'a,b,c' | split(',') | join('+') }} {{ items | join(',') }}", "a+b+c 3,1,2"),
        ("{{ items | length }} {{ items | count }} {{ 'abc' | length }} {{ user | length }}", "3 3 3 3"),
        ("{{ items | first }} {{ items | last }} {{ items | min }} {{ items | max }} {{ items | sum }} {{ items | sum(start=10) }}", "3 2 1 3 6 16"),
        ("{{ [1, 2, 1, 3] | unique }} {{ items | sort }} {{ items | sort(reverse=true) }}", "[1, 2, 3] [1, 2, 3] [3, 2, 1]"),
        ("{{ users | sort(attribute='uid') | map(attribute='name') | list }}", "['bob', 'ann']"),
        ("{{ users | selectattr('admin') | map(attribute='name') | first }} {{ users | rejectattr('admin') | map(attribute='name') | first }}", "ann bob"),
        ("{{ items | select('>', 1) | list }} {{ items | reject('>', 1) | list }}", "[3, 2] [1]"),
        ("{{ words | map('upper') | list }} {{ ['a1', 'b2'] | map('regex_replace', '\\\\d', '') | list }}", "['B', 'A', 'C'] ['a', 'b']"),
        ("{{ users | min(attribute='uid') | attr('name') }}", "bob"),
        ("{{ [1, 2] | zip(['a', 'b']) | list }}", "[[1, 'a'], [2, 'b']]"),
        ("{{ dict(a=1) }} {{ dict([['k', 'v']]) }} {{ dict(['x', 'y'] | zip([1, 2])) }}", "{'a': 1} {'k': 'v'} {'x': 1, 'y': 2}"),
        ("{{ 'x' | list }} {{ user | list }}", "['x'] ['name', 'groups', 'shell']"),
    ];
    for (template, expected) in cases {
        assert_eq!(render(template, v.clone()), expected, "{template}");
    }
}

#[test]
fn set_filters() {
    let cases = [
        ("{{ [1, 2, 2] | union([2, 3]) }}", "[1, 2, 3]"),
        ("{{ [1, 2, 3, 3] | intersect([3, 2, 9]) }}", "[2, 3]"),
        ("{{ [1, 2, 3] | difference([2]) }}", "[1, 3]"),
        (
            "{{ [1, 2, 3] | symmetric_difference([3, 4]) }}",
            "[1, 2, 4]",
        ),
        (
            "{{ [[1, [2]], [3], none, 'None', 4] | flatten }}",
            "[1, 2, 3, 4]",
        ),
        ("{{ [[1, [2]], [3]] | flatten(levels=1) }}", "[1, [2], 3]"),
        (
            "{{ [1, 2] | product(['a', 'b']) | list }}",
            "[[1, 'a'], [1, 'b'], [2, 'a'], [2, 'b']]",
        ),
        (
            "{{ [1, 2] | zip_longest(['a'], fillvalue='-') }}",
            "[[1, 'a'], [2, '-']]",
        ),
    ];
    for (template, expected) in cases {
        assert_eq!(render(template, json!({})), expected, "{template}");
    }
}

#[test]
fn regex_filters() {
    let cases = [
        (
            r"{{ 'ansible' | regex_replace('^a.*i(.*)$', 'a\\1') }}",
            "able",
        ),
        (
            r"{{ 'foobar' | regex_replace('^f.*o(.*)$', '\\g<1>x') }}",
            "barx",
        ),
        (
            r"{{ 'localhost:80' | regex_replace('^(?P<host>.+):(?P<port>\\d+)$', '\\g<host>, \\g<port>') }}",
            "localhost, 80",
        ),
        (
            "{{ 'ABC' | regex_replace('b', 'x', ignorecase=true) }}",
            "AxC",
        ),
        (
            "{{ 'a\nb' | regex_replace('^', '> ', multiline=true) }}",
            "> a\n> b",
        ),
        ("{{ 'cost $5' | regex_replace('cost', '$') }}", "$ $5"),
        ("{{ 'aaa' | regex_replace('a', 'b', count=2) }}", "bba"),
        (
            "{{ 'server1 server22' | regex_search('server[0-9]+') }}",
            "server1",
        ),
        ("{{ 'nothing' | regex_search('server') }}", "None"),
        (
            r"{{ 'host=web port=80' | regex_search('host=(\\w+) port=(?P<p>\\d+)', '\\1', '\\g<p>') }}",
            "['web', '80']",
        ),
        (
            r"{{ 'a1 b2 c3' | regex_findall('[a-z]\\d') }}",
            "['a1', 'b2', 'c3']",
        ),
        (
            r"{{ 'a1 b2' | regex_findall('([a-z])(\\d)') }}",
            "[['a', '1'], ['b', '2']]",
        ),
        ("{{ 'a.b*c' | regex_escape }}", "a\\.b\\*c"),
    ];
    for (template, expected) in cases {
        assert_eq!(render(template, json!({})), expected, "{template}");
    }
    let error = render_err("{{ 'x' | regex_replace('(', '') }}", json!({}));
    assert!(
        error.message.contains("invalid regular expression"),
        "{}",
        error.message
    );
}

#[test]
fn dict_filters() {
    let vars = json!({
        "base": {"a": 1, "nested": {"x": 1, "l": [1, 2]}},
        "over": {"b": 2, "nested": {"y": 2, "l": [2, 3]}},
        "pairs": [{"key": "k1", "value": "v1"}, {"key": "k2", "value": "v2"}],
        "named": [{"name": "n", "val": 1}]
    });
    let t = templar();
    let c = ctx(vars);
    let eval = |expr: &str| {
        t.eval(expr, &c)
            .unwrap_or_else(|e| panic!("{expr}: {}", e.message))
    };
    assert_eq!(
        eval("base | combine(over)"),
        json!({"a": 1, "nested": {"y": 2, "l": [2, 3]}, "b": 2})
    );
    assert_eq!(
        eval("base | combine(over, recursive=true)"),
        json!({"a": 1, "nested": {"x": 1, "l": [2, 3], "y": 2}, "b": 2})
    );
    assert_eq!(
        eval("base | combine(over, recursive=true, list_merge='append_rp')")["nested"]["l"],
        json!([1, 2, 3])
    );
    assert_eq!(
        eval("base | combine(over, recursive=true, list_merge='prepend')")["nested"]["l"],
        json!([2, 3, 1, 2])
    );
    assert_eq!(
        eval("base | combine(over, recursive=true, list_merge='keep')")["nested"]["l"],
        json!([1, 2])
    );
    assert_eq!(eval("[base, over] | combine")["b"], json!(2));
    assert_eq!(
        eval("{'a': 1} | dict2items"),
        json!([{"key": "a", "value": 1}])
    );
    assert_eq!(
        eval("{'a': 1} | dict2items(key_name='k', value_name='v')"),
        json!([{"k": "a", "v": 1}])
    );
    assert_eq!(eval("pairs | items2dict"), json!({"k1": "v1", "k2": "v2"}));
    assert_eq!(
        eval("named | items2dict(key_name='name', value_name='val')"),
        json!({"n": 1})
    );
    assert!(t.eval("base | combine(1)", &c).is_err());
}

#[test]
fn serialization_filters() {
    let vars = json!({"d": {"b": 1, "a": [true, null, "é"]}, "s": "{\"x\": [1, 2]}", "y": "a: 1\nb: [yes, '0755', 0755]\n"});
    assert_eq!(
        render("{{ d | to_json }}", vars.clone()),
        r#"{"b": 1, "a": [true, null, "\u00e9"]}"#
    );
    assert_eq!(
        render("{{ d | to_json(sort_keys=true) }}", vars.clone()),
        r#"{"a": [true, null, "\u00e9"], "b": 1}"#
    );
    assert_eq!(
        render("{{ d | to_nice_json }}", vars.clone()),
        "{\n    \"a\": [\n        true,\n        null,\n        \"\\u00e9\"\n    ],\n    \"b\": 1\n}"
    );
    assert_eq!(
        render("{{ d | to_nice_json(indent=2) }}", vars.clone())
            .lines()
            .nth(1),
        Some("  \"a\": [")
    );
    assert_eq!(eval("s | from_json", vars.clone()), json!({"x": [1, 2]}));
    assert_eq!(
        eval("y | from_yaml", vars.clone()),
        json!({"a": 1, "b": [true, "0755", 493]})
    );
    assert_eq!(
        eval("'a: 1\n---\nb: 2' | from_yaml_all", vars.clone()),
        json!([{"a": 1}, {"b": 2}])
    );
    assert_eq!(
        render("{{ d | to_yaml }}", vars.clone()),
        "a: [true, null, é]\nb: 1\n"
    );
    assert_eq!(
        render("{{ d | to_nice_yaml }}", vars.clone()),
        "a:\n- true\n- null\n- é\nb: 1\n"
    );
    assert_eq!(
        render(
            "{{ {'k': {'x': 'yes'}} | to_nice_yaml(indent=2) }}",
            vars.clone()
        ),
        "k:\n  x: 'yes'\n"
    );
}

#[test]
fn encoding_and_path_filters() {
    let cases = [
        ("{{ 'hello' | b64encode }}", "aGVsbG8="),
        ("{{ 'aGVsbG8=' | b64decode }}", "hello"),
        ("{{ 'abc' | hash('sha1') }}", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        ("{{ 'abc' | hash('md5') }}", "900150983cd24fb0d6963f7d28e17f72"),
        ("{{ 'abc' | hash('sha256') }}", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("{{ 'abc' | hash('sha512') | length }}", "128"),
        ("{{ 'abc' | checksum }} {{ 'abc' | sha1 == 'abc' | hash }}", "a9993e364706816aba3e25717850c26c9cd0d89d True"),
        ("{{ 'abc' | md5 }}", "900150983cd24fb0d6963f7d28e17f72"),
        ("{{ '/etc/app/conf.d/x.conf' | basename }} {{ '/etc/app/x.conf' | dirname }} {{ 'x' | dirname }}|", "x.conf /etc/app |"),
        ("{{ '/a/b.tar.gz' | splitext }} {{ '.bashrc' | splitext }}", "['/a/b.tar', '.gz'] ['.bashrc', '']"),
        ("{{ ['/etc', 'app', 'x.conf'] | path_join }}", "/etc/app/x.conf"),
        ("{{ 'simple' | quote }} {{ \"it's a test\" | quote }} {{ '' | quote }}", "simple 'it'\"'\"'s a test' ''"),
        ("{{ true | ternary('y', 'n') }} {{ 0 | ternary('y', 'n') }} {{ none | ternary('y', 'n', 'null') }}", "y n null"),
        ("{{ 'https://u:p@Example.com:8443/a/b?q=1#frag' | urlsplit('hostname') }}", "example.com"),
        ("{{ 'https://example.com:8443/a?q=1' | urlsplit('port') }} {{ 'https://example.com/a?q=1' | urlsplit('query') }}", "8443 q=1"),
        ("{{ ('http://h/p' | urlsplit).path }} {{ ('http://u@h/p' | urlsplit).username }}", "/p u"),
        ("{{ [{'n': [1, 2]}] | subelements('n') | length }}", "2"),
        ("{{ ['a'] | map('extract', {'a': {'b': 7}}, 'b') | list }}", "[7]"),
        ("{{ 1 | type_debug }} {{ 'x' | type_debug }} {{ [1] | type_debug }} {{ {} | type_debug }}", "int str list dict"),
    ];
    for (template, expected) in cases {
        assert_eq!(render(template, json!({})), expected, "{template}");
    }
    let home = dirs::home_dir().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        render("{{ '~/x' | expanduser }}", json!({})),
        format!("{}/x", home.trim_end_matches('/'))
    );
}

#[test]
fn jinja_tests_behave_like_ansible() {
    let truths = [
        "name is defined",
        "foo is undefined",
        "nothing is none",
        "name is string",
        "port is number",
        "port is integer",
        "1.5 is float",
        "user is mapping",
        "items is iterable",
        "items is sequence",
        "flag is boolean",
        "'yes' is truthy",
        "'' is falsy",
        "'no' is falsy(convert_bool=true)",
        "name is match('we')",
        "not (name is match('eb'))",
        "name is search('eb')",
        "'WEB' is match('web', ignorecase=true)",
        "name is regex('^w.b$')",
        "2 in items",
        "items is contains(3)",
        "'eb' in name",
        "ok_result is success",
        "ok_result is succeeded",
        "ok_result is changed",
        "bad_result is failed",
        "bad_result is failure",
        "not (bad_result is changed)",
        "skipped_result is skipped",
        "loop_result is changed",
        "ok_result is reachable",
        "'1.2' is version('1.10', '<')",
        "'1.10' is version('1.2', 'gt')",
        "'2.0.0' is version('2.0.0', 'eq')",
        "'1.0.0-rc1' is version('1.0.0', 'lt', version_type='semver')",
        "[1, 2] is subset([1, 2, 3])",
        "[1, 2, 3] is superset([3])",
        "'/etc' is abs",
        "'/' is exists",
        "'/' is directory",
        "[true, 1] is all",
        "[0, 1] is any",
        "not (ok_result is unreachable)",
        "{'finished': 1} is finished",
        "not ({'finished': 0} is finished)",
        "not ('/' is file)",
        "not ('/' is link)",
    ];
    for expr in truths {
        assert!(check(expr), "{expr} should be true");
    }
    for expr in [
        "name is undefined",
        "port is string",
        "name is match('eb')",
        "ok_result is failed",
        "'1.10' is version('1.2', '<')",
    ] {
        assert!(!check(expr), "{expr} should be false");
    }
    let error = templar()
        .eval("name is failed", &ctx(sample()))
        .unwrap_err();
    assert!(
        error.message.contains("expects a dictionary"),
        "{}",
        error.message
    );
}

#[test]
fn conditionals_follow_ansible() {
    assert!(check("flag"));
    assert!(!check("no_str"));
    assert!(!check("false_str"));
    assert!(check("yes_str"));
    assert!(!check("empty"));
    assert!(check("{{ port == 8080 }}"));
    assert!(check("{{ port }} == 8080"));
    assert!(check("user.shell"));
    assert!(!check("nothing"));
    assert!(check("items | length > 2"));
    let error = templar()
        .eval_bool("not_there", &ctx(sample()))
        .unwrap_err();
    assert_eq!(error.undefined.as_deref(), Some("not_there"));
    assert!(templar().eval_bool("   ", &ctx(sample())).is_err());
}

#[test]
fn lookups_on_the_controller() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::create_dir(dir.path().join("files")).unwrap();
    std::fs::write(dir.path().join("files/motd.txt"), "welcome\n\n").unwrap();
    std::fs::write(dir.path().join("files/a.conf"), "a").unwrap();
    std::fs::write(dir.path().join("files/b.conf"), "b").unwrap();
    std::fs::write(
        dir.path().join("templates/greet.j2"),
        "hi {{ name }}{% if flag %}!{% endif %} end\n",
    )
    .unwrap();
    let t = Templar::new(vec![dir.path().to_path_buf()]);
    let vars = ctx(sample());
    let render = |s: &str| {
        t.render_str(s, &vars)
            .unwrap_or_else(|e| panic!("{s}: {}", e.message))
    };
    std::env::set_var("ORCH_TEMPLATE_TEST", "from-env");
    assert_eq!(
        render("{{ lookup('env', 'ORCH_TEMPLATE_TEST') }}"),
        "from-env"
    );
    assert_eq!(
        render("{{ lookup('env', 'ORCH_NOT_SET_ANYWHERE', default='dflt') }}"),
        "dflt"
    );
    assert_eq!(render("[{{ lookup('file', 'motd.txt') }}]"), "[welcome]");
    assert_eq!(
        render("{{ lookup('file', 'motd.txt', rstrip=false) | length }}"),
        "9"
    );
    assert_eq!(
        render("{{ lookup('template', 'greet.j2') }}"),
        "hi web! end\n"
    );
    assert_eq!(
        render("{{ lookup('template', 'greet.j2', template_vars={'name': 'x'}) }}"),
        "hi x! end\n"
    );
    assert_eq!(
        render("{{ lookup('pipe', 'echo piped; echo two') }}"),
        "piped\ntwo"
    );
    assert_eq!(
        render("{{ query('lines', 'printf \"a\\nb\\n\"') }}"),
        "['a', 'b']"
    );
    assert_eq!(
        render("{{ q('env', 'ORCH_TEMPLATE_TEST') }}"),
        "['from-env']"
    );
    assert_eq!(
        render("{{ lookup('env', 'ORCH_TEMPLATE_TEST', 'ORCH_TEMPLATE_TEST') }}"),
        "from-env,from-env"
    );
    assert_eq!(
        render("{{ lookup('vars', 'port') }} {{ lookup('vars', 'zzz', default=1) }}"),
        "8080 1"
    );
    assert_eq!(
        render("{{ query('fileglob', '*.conf') | map('basename') | list }}"),
        "['a.conf', 'b.conf']"
    );
    assert_eq!(
        render("{{ lookup('first_found', ['nope.txt', 'b.conf']) | basename }}"),
        "b.conf"
    );
    assert_eq!(
        render("{{ lookup('dict', {'k': 1}) }}"),
        "{'key': 'k', 'value': 1}"
    );
    let error = t
        .render_str("{{ lookup('file', 'absent.txt') }}", &vars)
        .unwrap_err();
    assert!(
        error.message.contains("could not locate file"),
        "{}",
        error.message
    );
    let error = t
        .render_str("{{ lookup('password', 'x') }}", &vars)
        .unwrap_err();
    assert!(
        error
            .message
            .contains("lookup plugin 'password' is not supported"),
        "{}",
        error.message
    );
    let error = t
        .render_str("{{ lookup('pipe', 'exit 3') }}", &vars)
        .unwrap_err();
    assert!(error.message.contains("exited with 3"), "{}", error.message);
    assert_eq!(
        render("{{ lookup('file', 'absent.txt', errors='ignore') }}"),
        "None"
    );
}

#[test]
fn template_files_use_ansible_whitespace_and_includes() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(templates.join("main.j2"), "{% for u in users %}\n{{ u.name }}\n{% endfor %}\n{% include 'part.j2' %}\nsrc={{ template_path }}\n").unwrap();
    std::fs::write(templates.join("part.j2"), "  port={{ port }}\n").unwrap();
    let t = Templar::new(vec![dir.path().to_path_buf(), templates.clone()]);
    let out = t
        .render_file(std::path::Path::new("main.j2"), &ctx(sample()))
        .unwrap();
    assert_eq!(out, "ann\nbob\n  port=8080\nsrc=main.j2\n");
    let error = t
        .render_file(std::path::Path::new("missing.j2"), &ctx(sample()))
        .unwrap_err();
    assert!(
        error.message.contains("could not find template"),
        "{}",
        error.message
    );
    std::fs::write(templates.join("bad.j2"), "line1\n{{ nope }}\n").unwrap();
    let error = t
        .render_file(std::path::Path::new("bad.j2"), &ctx(sample()))
        .unwrap_err();
    assert_eq!(error.undefined.as_deref(), Some("nope"));
    assert!(error.message.contains("bad.j2:2"), "{}", error.message);
}

fn lazy(vars: Json) -> (Arc<Templar>, Value) {
    let t = Arc::new(templar());
    let map = match vars {
        Json::Object(map) => map,
        _ => unreachable!(),
    };
    let v = t.lazy_vars(
        Arc::new(map),
        vec![(
            "hostvars".to_string(),
            ctx(json!({"h1": {"ip": "10.0.0.1"}})),
        )],
    );
    (t, v)
}

#[test]
fn lazy_vars_resolve_nested_references() {
    let (t, vars) = lazy(json!({
        "base": "/srv", "app_dir": "{{ base }}/app", "conf": "{{ app_dir }}/conf",
        "ports": "{{ [80, 443] }}", "nested": {"path": "{{ conf }}/x"}, "bad": "{{ undefined_thing }}",
        "ip": "{{ hostvars['h1'].ip }}"
    }));
    assert_eq!(t.render_str("{{ conf }}", &vars).unwrap(), "/srv/app/conf");
    assert_eq!(
        t.render_value(&json!("{{ ports }}"), &vars).unwrap(),
        json!([80, 443])
    );
    assert_eq!(
        t.render_str("{{ nested.path }}", &vars).unwrap(),
        "/srv/app/conf/x"
    );
    assert_eq!(t.render_str("{{ ip }}", &vars).unwrap(), "10.0.0.1");
    assert_eq!(
        t.render_str("{{ bad | default('guarded') }}", &vars)
            .unwrap(),
        "guarded"
    );
    let error = t.render_str("{{ bad }}", &vars).unwrap_err();
    assert_eq!(
        error.undefined.as_deref(),
        Some("undefined_thing"),
        "{}",
        error.message
    );
    assert!(error.message.contains("'bad'"), "{}", error.message);
    assert!(t.eval_bool("bad is defined", &vars).is_ok_and(|b| !b));
}

#[test]
fn lazy_vars_detect_cycles() {
    let (t, vars) = lazy(json!({"a": "{{ b }}", "b": "{{ a }}", "self_ref": "x{{ self_ref }}"}));
    let error = t.render_str("{{ a }}", &vars).unwrap_err();
    assert!(
        error.message.contains("recursive loop"),
        "{}",
        error.message
    );
    assert!(error.message.contains("a -> b -> a"), "{}", error.message);
    let error = t.render_str("{{ self_ref }}", &vars).unwrap_err();
    assert!(error.message.contains("'self_ref'"), "{}", error.message);
}

#[test]
fn lazy_vars_memoize_per_context() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    let (t, vars) = lazy(
        json!({"stamp": format!("{{{{ lookup('pipe', 'echo x >> {}; wc -l < {}') }}}}", counter.display(), counter.display())}),
    );
    assert_eq!(
        t.render_str("{{ stamp }} {{ stamp }}", &vars)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1", "1"]
    );
    assert_eq!(t.render_str("{{ stamp }}", &vars).unwrap().trim(), "1");
    assert_eq!(
        t.render_str("{{ hostvars.h1.ip }} {{ vars_count }}", &vars)
            .unwrap_err()
            .undefined
            .as_deref(),
        Some("vars_count")
    );
}

/// A context object that builds a fresh lazy context on every access, as the executor's `hostvars` does.
#[derive(Debug)]
struct FreshEachTime {
    templar: Arc<Templar>,
    vars: Arc<serde_json::Map<String, Json>>,
}

impl minijinja::value::Object for FreshEachTime {
    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        Some(self.templar.lazy_vars(
            self.vars.clone(),
            vec![("hv".into(), Value::from_dyn_object(self.clone()))],
        ))
    }
}

#[test]
fn lazy_loops_through_fresh_contexts_stop_without_overflowing() {
    let t = Arc::new(templar());
    let map = match json!({"a": "{{ hv.me.a }}", "b": "{{ hv.me.c }}", "c": "deep"}) {
        Json::Object(map) => Arc::new(map),
        _ => unreachable!(),
    };
    let hv = Value::from_object(FreshEachTime {
        templar: t.clone(),
        vars: map.clone(),
    });
    let vars = t.lazy_vars(map, vec![("hv".into(), hv)]);
    // Run on a thread with tokio's worker stack size to prove the bound keeps us within it.
    let outcome = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            (
                t.render_str("{{ a }}", &vars),
                t.render_str("{{ b }}", &vars),
            )
        })
        .unwrap()
        .join()
        .unwrap();
    let error = outcome.0.unwrap_err();
    assert!(
        error.message.contains("variables deep"),
        "{}",
        error.message
    );
    assert_eq!(outcome.1.unwrap(), "deep");
}

#[test]
fn long_reference_chains_fit_on_a_worker_stack() {
    let mut map = serde_json::Map::new();
    for i in 0..20 {
        map.insert(format!("v{i}"), json!(format!("{{{{ v{} }}}}", i + 1)));
    }
    map.insert("v20".into(), json!("end"));
    let t = Arc::new(templar());
    let vars = t.lazy_vars(Arc::new(map), vec![]);
    let out = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || t.render_str("{{ v0 }}", &vars))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(out.unwrap(), "end");
}

#[test]
fn python_literals_and_free_is_template() {
    assert!(is_template("{{ x }}"));
    assert!(!is_template("x"));
    assert_eq!(
        render(
            "{{ True }} {{ False }} {{ None }} {{ true and not false }}",
            json!({})
        ),
        "True False None True"
    );
}

/// Check mode: a context over `vars` that knows `unknown` as names only a real run gives, with a
/// `hv.<name>` object standing for another host's variables (as `hostvars` does).
fn tracking(vars: Json, other_host: Json, unknown: &[&str]) -> (Arc<Templar>, Value) {
    let t = Arc::new(templar());
    let unknowns = Arc::new(Unknowns::default());
    unknown.iter().for_each(|n| unknowns.add("h1", n));
    let as_map = |v: Json| match v {
        Json::Object(map) => Arc::new(map),
        _ => Arc::new(serde_json::Map::new()),
    };
    let other = t.lazy_vars_tracking(as_map(other_host), vec![], &unknowns);
    let hv = Value::from_pairs(vec![(Value::from("h2"), other)]);
    let vars = t.lazy_vars_tracking(as_map(vars), vec![("hv".into(), hv)], &unknowns);
    (t, vars)
}

#[test]
fn undefined_values_behind_unknown_names_are_named() {
    let skipped = json!({"changed": false, "skipped": true, "msg": "would run"});
    let (t, vars) = tracking(
        json!({
            "out": skipped,
            "looped": {"skipped": true, "results": [{"skipped": true}]},
            "via": "{{ hv.h2.fact.url }}",
            "known": {"a": 1},
        }),
        json!({"other": 1}),
        &["out", "looped", "fact"],
    );
    let unknown = |template: &str| t.render_str(template, &vars).unwrap_err().unknown;
    // A key the skipped result lacks, at any depth; a fact never set, through a variable and another
    // host's variables; several names when a render meets several.
    assert_eq!(unknown("{{ out.stdout }}"), vec!["out"]);
    assert_eq!(
        unknown("{{ looped.results[0].stdout | int }}"),
        vec!["looped"]
    );
    assert_eq!(unknown("{{ via }}"), vec!["fact"]);
    assert_eq!(unknown("{{ hv.h2.fact }}"), vec!["fact"]);
    assert_eq!(
        unknown("{{ out.rc | default(0) }}{{ looped.missing }}"),
        vec!["out", "looped"]
    );
    // Keys that are there read as usual, and so do guarded lookups.
    assert_eq!(t.render_str("{{ out.msg }}", &vars).unwrap(), "would run");
    assert_eq!(
        t.render_str("{{ out.stdout | default('n/a') }}", &vars)
            .unwrap(),
        "n/a"
    );
    assert_eq!(
        t.eval("out", &vars).unwrap(),
        skipped,
        "a registered result serializes as is"
    );
    // Genuine errors stay genuine: a name nothing defines, a key a known value lacks, even after a
    // guarded lookup of an unknown value in the same template.
    assert!(unknown("{{ typo }}").is_empty());
    assert!(unknown("{{ known.typo }}").is_empty());
    assert!(unknown("{{ out.stdout | default('') }}{{ typo }}").is_empty());
    assert!(unknown("{{ out.stdout | default('') }}{{ known.typo }}").is_empty());
    assert!(unknown("{{ out.stdout | default('') }}{{ hv.h2.typo }}").is_empty());
    assert!(unknown("{{ out.stdout | default('') }}{{ known['a'].typo }}").is_empty());
}

#[test]
fn undefined_paths_split_into_keys() {
    let keys = |p: &str| path_keys(p).map(|k| k.iter().map(|v| v.to_string()).collect::<Vec<_>>());
    assert_eq!(
        keys("a.b[0]['c'][\"d\"]"),
        Some(vec![
            "a".into(),
            "b".into(),
            "0".into(),
            "c".into(),
            "d".into()
        ])
    );
    assert_eq!(keys("hostvars[host].x"), None);
    assert_eq!(keys("a."), None);
}

#[test]
fn conditions_name_the_unknown_values_they_read() {
    let (t, vars) = tracking(
        json!({"out": {"skipped": true}, "flag": true}),
        json!({}),
        &["out", "fact"],
    );
    assert_eq!(
        t.eval_bool_noting_unknown("out.rc | default(1) == 0", &vars)
            .unwrap(),
        (false, vec!["out".to_string()])
    );
    assert_eq!(
        t.eval_bool_noting_unknown("fact is defined", &vars)
            .unwrap(),
        (false, vec!["fact".to_string()])
    );
    // A placeholder's keys are there, but a real run gives other values.
    assert_eq!(
        t.eval_bool_noting_unknown("out is skipped and flag", &vars)
            .unwrap(),
        (true, vec!["out".to_string()])
    );
    // Whether the name is defined is known (a real run registers it too).
    assert_eq!(
        t.eval_bool_noting_unknown("out is defined and flag", &vars)
            .unwrap(),
        (true, vec![])
    );
}

#[test]
fn without_unknown_names_nothing_is_noted() {
    let (t, vars) = tracking(json!({"out": {"skipped": true}}), json!({}), &[]);
    let e = t.render_str("{{ out.stdout }}", &vars).unwrap_err();
    assert!(e.unknown.is_empty(), "{e:?}");
    assert_eq!(
        render_err("{{ missing }}", json!({})).unknown,
        Vec::<String>::new()
    );
}
