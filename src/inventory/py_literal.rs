//! The subset of Python's `ast.literal_eval` that Ansible's INI inventory applies to every value
//! (`[g:vars]` lines and host inline vars alike): numbers, strings, `True/False/None`, lists, tuples,
//! sets and dicts. Text that is not a Python literal stays the original string, as in Ansible
//! (`yes` and `true` stay strings; `True` becomes a boolean; `0755` stays a string).

use serde_json::{Map, Value};

/// Evaluates `text` as a Python literal, or returns it unchanged as a string.
pub fn literal_or_string(text: &str) -> Value {
    let mut parser = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    match parser.top_level() {
        Some(value) => value,
        None => Value::String(text.to_string()),
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    /// Skips blanks and a trailing `#` comment (Python source allows both).
    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if c == ' ' || c == '\t' || c == '\x0c' {
                self.pos += 1;
            } else if c == '#' {
                self.pos = self.chars.len();
            } else {
                break;
            }
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn top_level(&mut self) -> Option<Value> {
        let first = self.expression()?;
        let value = if self.eat(',') {
            // `1, 2` is a tuple; Ansible turns tuples into lists.
            let mut items = vec![first];
            loop {
                self.skip_space();
                if self.peek().is_none() {
                    break;
                }
                items.push(self.expression()?);
                if !self.eat(',') {
                    break;
                }
            }
            Value::Array(items)
        } else {
            first
        };
        self.skip_space();
        if self.pos == self.chars.len() {
            Some(value)
        } else {
            None
        }
    }

    fn expression(&mut self) -> Option<Value> {
        self.skip_space();
        match self.peek()? {
            '-' | '+' => {
                let negative = self.peek() == Some('-');
                self.pos += 1;
                let operand = self.expression()?;
                negate_number(operand, negative)
            }
            '[' => {
                self.pos += 1;
                Some(Value::Array(self.sequence(']')?))
            }
            '(' => {
                self.pos += 1;
                // `(x)` is just x; `(x,)` and `()` are tuples, which Ansible turns into lists.
                if self.eat(')') {
                    return Some(Value::Array(Vec::new()));
                }
                let first = self.expression()?;
                if self.eat(')') {
                    return Some(first);
                }
                if !self.eat(',') {
                    return None;
                }
                let mut items = vec![first];
                items.extend(self.sequence(')')?);
                Some(Value::Array(items))
            }
            '{' => {
                self.pos += 1;
                self.dict_or_set()
            }
            c if c.is_ascii_digit()
                || (c == '.' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                self.number()
            }
            c if c.is_alphabetic() || c == '_' => self.name_or_prefixed_string(),
            '\'' | '"' => self.strings(String::new()),
            _ => None,
        }
    }

    /// Items up to `close`, allowing a trailing comma.
    fn sequence(&mut self, close: char) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.expression()?);
            if !self.eat(',') {
                return if self.eat(close) { Some(items) } else { None };
            }
        }
    }

    fn dict_or_set(&mut self) -> Option<Value> {
        if self.eat('}') {
            return Some(Value::Object(Map::new()));
        }
        let first = self.expression()?;
        if self.eat(':') {
            let mut map = Map::new();
            let value = self.expression()?;
            map.insert(key_text(&first)?, value);
            loop {
                if !self.eat(',') {
                    return if self.eat('}') {
                        Some(Value::Object(map))
                    } else {
                        None
                    };
                }
                if self.eat('}') {
                    return Some(Value::Object(map));
                }
                let key = self.expression()?;
                if !self.eat(':') {
                    return None;
                }
                let value = self.expression()?;
                map.insert(key_text(&key)?, value);
            }
        }
        // A set: Ansible coerces it to a list (duplicates removed, order kept as written).
        let mut items = vec![first];
        if self.eat(',') {
            items.extend(self.sequence('}')?);
        } else if !self.eat('}') {
            return None;
        }
        let mut unique: Vec<Value> = Vec::new();
        for item in items {
            if !unique.contains(&item) {
                unique.push(item);
            }
        }
        Some(Value::Array(unique))
    }

    fn name_or_prefixed_string(&mut self) -> Option<Value> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        if matches!(self.peek(), Some('\'' | '"')) {
            let lower = word.to_ascii_lowercase();
            return match lower.as_str() {
                "r" | "u" | "b" | "rb" | "br" => self.strings(lower),
                _ => None, // f-strings and unknown prefixes are not literals
            };
        }
        match word.as_str() {
            "True" => Some(Value::Bool(true)),
            "False" => Some(Value::Bool(false)),
            "None" => Some(Value::Null),
            _ => None,
        }
    }

    /// One or more adjacent string literals (Python concatenates them).
    fn strings(&mut self, first_prefix: String) -> Option<Value> {
        let mut out = self.one_string(first_prefix.contains('r'))?;
        loop {
            self.skip_space();
            let save = self.pos;
            let mut prefix = String::new();
            while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) && prefix.len() < 2 {
                prefix.push(self.peek()?.to_ascii_lowercase());
                self.pos += 1;
            }
            let prefix_ok = matches!(prefix.as_str(), "" | "r" | "u" | "b" | "rb" | "br");
            if prefix_ok && matches!(self.peek(), Some('\'' | '"')) {
                out.push_str(&self.one_string(prefix.contains('r'))?);
            } else {
                self.pos = save;
                return Some(Value::String(out));
            }
        }
    }

    fn one_string(&mut self, raw: bool) -> Option<String> {
        let quote = self.peek()?;
        let triple = self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            if c == quote {
                if !triple {
                    self.pos += 1;
                    return Some(out);
                }
                if self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote) {
                    self.pos += 3;
                    return Some(out);
                }
            }
            self.pos += 1;
            if c != '\\' {
                out.push(c);
                continue;
            }
            let next = self.peek()?;
            self.pos += 1;
            if raw {
                out.push('\\');
                out.push(next);
                continue;
            }
            match next {
                '\\' | '\'' | '"' => out.push(next),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'v' => out.push('\x0b'),
                '0'..='7' => {
                    let mut code = next.to_digit(8)?;
                    for _ in 0..2 {
                        match self.peek().and_then(|d| d.to_digit(8)) {
                            Some(d) => {
                                code = code * 8 + d;
                                self.pos += 1;
                            }
                            None => break,
                        }
                    }
                    out.push(char::from_u32(code)?);
                }
                'x' | 'u' | 'U' => {
                    let len = match next {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = self.chars.get(self.pos..self.pos + len)?.iter().collect();
                    self.pos += len;
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                // Unknown escapes keep their backslash, as Python does.
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            let c = self.peek()?;
            self.pos += 1;
            // An exponent sign belongs to the number: 1e-3.
            if (c == 'e' || c == 'E')
                && matches!(self.peek(), Some('+' | '-'))
                && !self.chars[start..self.pos]
                    .iter()
                    .any(|d| *d == 'x' || *d == 'X')
            {
                self.pos += 1;
            }
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        parse_python_number(&text)
    }
}

fn negate_number(value: Value, negative: bool) -> Option<Value> {
    let Value::Number(n) = value else { return None };
    if !negative {
        return Some(Value::Number(n));
    }
    if let Some(i) = n.as_i64() {
        return Some(Value::from(i.checked_neg()?));
    }
    serde_json::Number::from_f64(-n.as_f64()?).map(Value::Number)
}

fn key_text(key: &Value) -> Option<String> {
    // JSON keys are text; json.dumps renders Python keys the same way.
    Some(match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        _ => return None, // lists and dicts are unhashable in Python
    })
}

fn digits_with_underscores(text: &str, radix: u32) -> Option<String> {
    if text.is_empty() || text.starts_with('_') || text.ends_with('_') || text.contains("__") {
        return None;
    }
    let digits: String = text.chars().filter(|c| *c != '_').collect();
    digits.chars().all(|c| c.is_digit(radix)).then_some(digits)
}

fn parse_python_number(text: &str) -> Option<Value> {
    let lower = text.to_ascii_lowercase();
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = lower.strip_prefix(prefix) {
            let rest = rest.strip_prefix('_').unwrap_or(rest);
            let digits = digits_with_underscores(rest, radix)?;
            return i64::from_str_radix(&digits, radix).ok().map(Value::from);
        }
    }
    if lower.ends_with('j') {
        return None; // complex numbers are not variable values
    }
    if let Some(digits) = digits_with_underscores(&lower, 10) {
        // Python 3 rejects leading zeros in decimal integers (`0755` is a syntax error) except all-zero.
        if digits.len() > 1 && digits.starts_with('0') && digits.chars().any(|c| c != '0') {
            return None;
        }
        return digits.parse::<i64>().ok().map(Value::from);
    }
    // A float: digits, optional fraction, optional exponent, underscores only between digits.
    let (mantissa, exponent) = match lower.find('e') {
        Some(i) => (&lower[..i], Some(&lower[i + 1..])),
        None => (lower.as_str(), None),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], Some(&mantissa[i + 1..])),
        None => (mantissa, None),
    };
    if frac_part.is_none() && exponent.is_none() {
        return None;
    }
    let mut clean = String::new();
    if !int_part.is_empty() {
        clean.push_str(&digits_with_underscores(int_part, 10)?);
    }
    if let Some(frac) = frac_part {
        clean.push('.');
        if !frac.is_empty() {
            clean.push_str(&digits_with_underscores(frac, 10)?);
        }
    }
    if int_part.is_empty() && frac_part.is_none_or(|f| f.is_empty()) {
        return None;
    }
    if let Some(exp) = exponent {
        let (sign, body) = match exp.strip_prefix(['+', '-']) {
            Some(body) => (&exp[..1], body),
            None => ("", exp),
        };
        clean.push('e');
        clean.push_str(sign);
        clean.push_str(&digits_with_underscores(body, 10)?);
    }
    let value: f64 = clean.parse().ok()?;
    serde_json::Number::from_f64(value)
        .filter(|_| value.is_finite())
        .map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(s: &str) -> Value {
        literal_or_string(s)
    }

    #[test]
    fn scalars() {
        assert_eq!(eval("5"), json!(5));
        assert_eq!(eval("-5"), json!(-5));
        assert_eq!(eval("1_000"), json!(1000));
        assert_eq!(eval("0x1F"), json!(31));
        assert_eq!(eval("1.5"), json!(1.5));
        assert_eq!(eval("1e3"), json!(1000.0));
        assert_eq!(eval("True"), json!(true));
        assert_eq!(eval("None"), Value::Null);
        assert_eq!(eval("true"), json!("true"));
        assert_eq!(eval("yes"), json!("yes"));
        assert_eq!(eval("0755"), json!("0755"));
        assert_eq!(eval("10.0.0.1"), json!("10.0.0.1"));
        assert_eq!(eval("1.2.3"), json!("1.2.3"));
        assert_eq!(eval("1 # comment"), json!(1));
        assert_eq!(eval("hello # comment"), json!("hello # comment"));
        assert_eq!(eval(""), json!(""));
    }

    #[test]
    fn strings() {
        assert_eq!(eval("'quoted'"), json!("quoted"));
        assert_eq!(eval(r#""a\tb""#), json!("a\tb"));
        assert_eq!(eval(r#"r"a\tb""#), json!("a\\tb"));
        assert_eq!(eval("'a' 'b'"), json!("ab"));
        assert_eq!(eval("'''x'''"), json!("x"));
        assert_eq!(eval("'unterminated"), json!("'unterminated"));
        assert_eq!(eval("a b"), json!("a b"));
    }

    #[test]
    fn containers() {
        assert_eq!(eval("[1, 2]"), json!([1, 2]));
        assert_eq!(eval("[1, 'a',]"), json!([1, "a"]));
        assert_eq!(eval("(1,)"), json!([1]));
        assert_eq!(eval("(1)"), json!(1));
        assert_eq!(eval("()"), json!([]));
        assert_eq!(eval("1, 2"), json!([1, 2]));
        assert_eq!(
            eval("{'k': 'v', 1: [True]}"),
            json!({"k": "v", "1": [true]})
        );
        assert_eq!(eval("{}"), json!({}));
        assert_eq!(eval("{1, 2, 1}"), json!([1, 2]));
        assert_eq!(eval("[1, 2"), json!("[1, 2"));
        assert_eq!(eval("{'a': x}"), json!("{'a': x}"));
    }
}
