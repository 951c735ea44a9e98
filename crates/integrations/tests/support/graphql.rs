//! A small checker of GraphQL documents against an SDL schema excerpt:
//! every field selected exists on its type, every argument on its field,
//! every input object field (written in the document, or in a variable's
//! JSON value) on its input type, and every variable is declared with a
//! type the schema has. Enough for the documents orch sends to Linear; not
//! a GraphQL validator (no fragments, no directives in documents).

use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Field {
    /// The named type, without `!` and `[]`.
    pub ty: String,
    pub args: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct Schema {
    /// Object and input types: name → fields.
    pub types: BTreeMap<String, BTreeMap<String, Field>>,
    /// Scalars and enums.
    pub leaves: BTreeMap<String, Vec<String>>,
}

fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == '#' {
            while chars.peek().is_some_and(|c| *c != '\n') {
                chars.next();
            }
        } else if c == '"' {
            chars.next();
            let mut s = String::from("\"");
            while let Some(c) = chars.next() {
                if c == '\\' {
                    chars.next();
                    continue;
                }
                if c == '"' {
                    break;
                }
                s.push(c);
            }
            out.push(s);
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut s = String::new();
            while chars
                .peek()
                .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
            {
                s.push(chars.next().unwrap());
            }
            out.push(s);
        } else if c.is_whitespace() || c == ',' {
            chars.next();
        } else {
            out.push(chars.next().unwrap().to_string());
        }
    }
    out
}

struct Cursor {
    t: Vec<String>,
    i: usize,
}

impl Cursor {
    fn peek(&self) -> &str {
        self.t.get(self.i).map_or("", String::as_str)
    }
    fn next(&mut self) -> String {
        self.i += 1;
        self.t.get(self.i - 1).cloned().unwrap_or_default()
    }
    fn expect(&mut self, s: &str) -> Result<(), String> {
        let got = self.next();
        if got == s {
            Ok(())
        } else {
            Err(format!("expected {s:?}, found {got:?}"))
        }
    }
    /// `[Type!]!` → `Type`.
    fn type_ref(&mut self) -> String {
        let mut name = String::new();
        while matches!(self.peek(), "[" | "]" | "!") || name.is_empty() {
            let t = self.next();
            if t.is_empty() {
                break;
            }
            if !matches!(t.as_str(), "[" | "]" | "!") {
                name = t;
            }
        }
        while matches!(self.peek(), "]" | "!") {
            self.next();
        }
        name
    }
    /// Skip a value (a default, a directive argument).
    fn skip_value(&mut self) {
        match self.next().as_str() {
            "[" | "{" | "(" => {
                let mut depth = 1;
                while depth > 0 && self.i < self.t.len() {
                    match self.next().as_str() {
                        "[" | "{" | "(" => depth += 1,
                        "]" | "}" | ")" => depth -= 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    fn skip_directives(&mut self) {
        while self.peek() == "@" {
            self.next();
            self.next();
            if self.peek() == "(" {
                self.skip_value();
            }
        }
    }
}

impl Schema {
    pub fn parse(sdl: &str) -> Schema {
        let mut c = Cursor {
            t: tokens(sdl),
            i: 0,
        };
        let mut s = Schema::default();
        while c.i < c.t.len() {
            let kw = c.next();
            let name = c.next();
            match kw.as_str() {
                "scalar" => {
                    s.leaves.insert(name, vec![]);
                }
                "enum" => {
                    c.expect("{").unwrap();
                    let mut values = vec![];
                    while c.peek() != "}" {
                        values.push(c.next());
                        c.skip_directives();
                    }
                    c.next();
                    s.leaves.insert(name, values);
                }
                "type" | "input" | "interface" => {
                    while c.peek() != "{" {
                        c.next();
                    }
                    c.next();
                    let mut fields = BTreeMap::new();
                    while c.peek() != "}" {
                        let f = c.next();
                        let mut args = BTreeMap::new();
                        if c.peek() == "(" {
                            c.next();
                            while c.peek() != ")" {
                                let a = c.next();
                                c.expect(":").unwrap();
                                args.insert(a, c.type_ref());
                                if c.peek() == "=" {
                                    c.next();
                                    c.skip_value();
                                }
                                c.skip_directives();
                            }
                            c.next();
                        }
                        c.expect(":").unwrap();
                        let ty = c.type_ref();
                        if c.peek() == "=" {
                            c.next();
                            c.skip_value();
                        }
                        c.skip_directives();
                        fields.insert(f, Field { ty, args });
                    }
                    c.next();
                    s.types.insert(name, fields);
                }
                other => panic!("unexpected {other:?} in the schema excerpt"),
            }
        }
        s
    }

    fn known(&self, ty: &str) -> bool {
        self.types.contains_key(ty)
            || self.leaves.contains_key(ty)
            || matches!(ty, "String" | "Int" | "Float" | "Boolean" | "ID")
    }

    /// Check a document and the variables sent with it.
    pub fn check(&self, doc: &str, variables: &Value) -> Result<(), String> {
        let mut c = Cursor {
            t: tokens(doc),
            i: 0,
        };
        let root = match c.next().as_str() {
            "query" => "Query",
            "mutation" => "Mutation",
            other => return Err(format!("not an operation: {other:?}")),
        };
        if c.peek() != "{" && c.peek() != "(" {
            c.next();
        }
        let mut vars = BTreeMap::new();
        if c.peek() == "(" {
            c.next();
            while c.peek() != ")" {
                let v = c.next();
                c.expect(":")?;
                let ty = c.type_ref();
                if !self.known(&ty) {
                    return Err(format!(
                        "variable {v} has type {ty}, which the schema lacks"
                    ));
                }
                vars.insert(v, ty);
            }
            c.next();
        }
        for (name, ty) in &vars {
            if let Some(v) = variables.get(name.trim_start_matches('$')) {
                self.check_value(ty, v, name)?;
            }
        }
        if let Some(obj) = variables.as_object() {
            for k in obj.keys() {
                if !vars.contains_key(&format!("${k}")) {
                    return Err(format!("variable ${k} is sent but not declared"));
                }
            }
        }
        self.selection(&mut c, root)?;
        Ok(())
    }

    /// A JSON value sent for a variable of input type `ty`.
    fn check_value(&self, ty: &str, v: &Value, at: &str) -> Result<(), String> {
        match v {
            Value::Object(o) => {
                let fields = self.types.get(ty).ok_or_else(|| {
                    format!("{at}: an object for {ty}, which is no input type here")
                })?;
                for (k, x) in o {
                    let f = fields
                        .get(k)
                        .ok_or_else(|| format!("{at}: {ty} has no field {k}"))?;
                    self.check_value(&f.ty, x, &format!("{at}.{k}"))?;
                }
                Ok(())
            }
            Value::Array(xs) => xs.iter().try_for_each(|x| self.check_value(ty, x, at)),
            _ if self.types.contains_key(ty) && !v.is_null() => {
                Err(format!("{at}: a scalar for the input type {ty}"))
            }
            _ => Ok(()),
        }
    }

    /// An inline input object in the document (`{ key: { eq: $key } }`).
    fn inline_input(&self, c: &mut Cursor, ty: &str, at: &str) -> Result<(), String> {
        match c.peek() {
            "{" => {
                c.next();
                let fields = self
                    .types
                    .get(ty)
                    .ok_or_else(|| format!("{at}: {ty} is no input type here"))?;
                while c.peek() != "}" {
                    let k = c.next();
                    c.expect(":")?;
                    let f = fields
                        .get(&k)
                        .ok_or_else(|| format!("{at}: {ty} has no field {k}"))?;
                    self.inline_input(c, &f.ty, &format!("{at}.{k}"))?;
                }
                c.next();
                Ok(())
            }
            "[" => {
                c.skip_value();
                Ok(())
            }
            _ => {
                c.next();
                Ok(())
            }
        }
    }

    fn selection(&self, c: &mut Cursor, ty: &str) -> Result<(), String> {
        c.expect("{")?;
        let fields = self
            .types
            .get(ty)
            .ok_or_else(|| format!("{ty} is not an object type of the excerpt"))?;
        while c.peek() != "}" {
            let name = c.next();
            if name.is_empty() {
                return Err("unterminated selection".into());
            }
            let f = fields
                .get(&name)
                .ok_or_else(|| format!("{ty} has no field {name}"))?;
            if c.peek() == "(" {
                c.next();
                while c.peek() != ")" {
                    let a = c.next();
                    c.expect(":")?;
                    let aty = f
                        .args
                        .get(&a)
                        .ok_or_else(|| format!("{ty}.{name} has no argument {a}"))?;
                    self.inline_input(c, aty, &format!("{ty}.{name}({a})"))?;
                }
                c.next();
            }
            let object = self.types.contains_key(&f.ty);
            match (c.peek() == "{", object) {
                (true, true) => self.selection(c, &f.ty)?,
                (true, false) => {
                    return Err(format!("{ty}.{name} is a {} and has no fields", f.ty));
                }
                (false, true) => {
                    return Err(format!("{ty}.{name} is an object: select its fields"));
                }
                (false, false) => {}
            }
        }
        c.next();
        Ok(())
    }
}
