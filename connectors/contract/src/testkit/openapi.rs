//! A request validator for the channels' published API descriptions
//! (Swagger 2.0 and OpenAPI 3.x JSON), so that connector tests can show that
//! every request a connector makes is one the channel documents: the
//! operation exists for that method and path, every query, path and header
//! parameter is known, present when required and of the right type, enum
//! and range, and the body matches the operation's schema (JSON or
//! form-encoded).
//!
//! It checks requests, not responses, and covers the parts of JSON Schema
//! that channel specs use (`$ref`, `allOf`/`anyOf`/`oneOf`, types,
//! `nullable`, `enum`, bounds, `required`, `properties`, `items`,
//! `additionalProperties: false`, `date-time`). Unknown query parameters are
//! errors: a misspelt filter is silently ignored by a channel, which is
//! exactly the mistake this is here to catch.

use std::path::Path;

use serde_json::{Map, Value};

use super::server::HttpRequest;

/// One channel API description.
#[derive(Debug, Clone)]
pub struct OpenApi {
    doc: Value,
    base_path: String,
    /// Parameter names present in every request of this API that the
    /// description leaves out (auth headers and the like). Compared ignoring case.
    ignored_headers: Vec<String>,
}

/// Where a request broke the description.
pub type Violations = Vec<String>;

impl OpenApi {
    /// Reads a JSON description. The base path is the path part of the first
    /// server URL (OpenAPI 3, with its variables' defaults) or `basePath`
    /// (Swagger 2.0).
    pub fn load(path: &Path) -> Result<OpenApi, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        Ok(OpenApi::from_value(doc))
    }

    pub fn from_value(doc: Value) -> OpenApi {
        let base_path = base_path(&doc);
        OpenApi {
            doc,
            base_path,
            ignored_headers: vec![
                "authorization".into(),
                "content-type".into(),
                "accept".into(),
                "content-length".into(),
                "host".into(),
                "user-agent".into(),
            ],
        }
    }

    /// Overrides the base path (when the API is served under another prefix).
    pub fn with_base_path(mut self, base: &str) -> OpenApi {
        self.base_path = base.trim_end_matches('/').to_owned();
        self
    }

    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// Whether `path` (as requested, base path included) is under this API.
    pub fn covers(&self, path: &str) -> bool {
        path.starts_with(&self.base_path) && self.find(path).is_some()
    }

    /// Checks one request; answers the operation's id (or `METHOD template`
    /// when it has none), or every violation found.
    pub fn validate(&self, req: &HttpRequest) -> Result<String, Violations> {
        let method = req.method.to_ascii_lowercase();
        let Some((template, item)) = self.find(&req.path) else {
            return Err(vec![format!(
                "{} {}: no such path in the API description (base path {:?})",
                req.method, req.path, self.base_path
            )]);
        };
        let Some(op) = item.get(&method) else {
            return Err(vec![format!(
                "{} {}: {template} has no {} operation",
                req.method,
                req.path,
                req.method.to_ascii_uppercase()
            )]);
        };
        let name = op
            .get("operationId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{} {template}", req.method.to_ascii_uppercase()));
        let mut errors = Vec::new();
        let at = |what: &str| format!("{name}: {what}");

        let params = self.parameters(item, op);
        // Path parameters: the template's `{x}` segments.
        let actual = segments(req.path.strip_prefix(&self.base_path).unwrap_or(&req.path));
        for (t, a) in segments(&template).iter().zip(&actual) {
            if let Some(pname) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                match params.iter().find(|p| is(p, "path", pname)) {
                    Some(p) => self.check_param(p, &percent_decode(a), &at(pname), &mut errors),
                    None => errors.push(at(&format!("path parameter {pname} is not described"))),
                }
            }
        }
        // Query parameters.
        for (key, value) in &req.query {
            match params.iter().find(|p| is(p, "query", key)) {
                Some(p) => self.check_param(p, value, &at(&format!("query {key}")), &mut errors),
                None => errors.push(at(&format!("unknown query parameter {key:?}"))),
            }
        }
        for p in params.iter().filter(|p| required(p)) {
            let pname = p.get("name").and_then(Value::as_str).unwrap_or_default();
            let present = match p.get("in").and_then(Value::as_str) {
                Some("query") => req.query.iter().any(|(k, _)| k == pname),
                Some("header") => req.header(pname).is_some(),
                _ => true,
            };
            if !present {
                errors.push(at(&format!("required parameter {pname:?} is missing")));
            }
        }
        // Header parameters that are sent are checked too.
        for p in params
            .iter()
            .filter(|p| p.get("in") == Some(&Value::from("header")))
        {
            let pname = p.get("name").and_then(Value::as_str).unwrap_or_default();
            if self
                .ignored_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(pname))
            {
                continue;
            }
            if let Some(v) = req.header(pname) {
                self.check_param(p, v, &at(&format!("header {pname}")), &mut errors);
            }
        }
        self.check_body(req, op, &params, &at("body"), &mut errors);
        if errors.is_empty() {
            Ok(name)
        } else {
            Err(errors)
        }
    }

    /// The path item a request path falls under: the template that matches
    /// with the most literal segments.
    fn find(&self, path: &str) -> Option<(String, &Value)> {
        let rest = path.strip_prefix(&self.base_path)?;
        let actual = segments(rest);
        let paths = self.doc.get("paths")?.as_object()?;
        paths
            .iter()
            .filter_map(|(template, item)| {
                let t = segments(template);
                if t.len() != actual.len() {
                    return None;
                }
                let mut literal = 0;
                for (t, a) in t.iter().zip(&actual) {
                    if t.starts_with('{') && t.ends_with('}') {
                        if a.is_empty() {
                            return None;
                        }
                    } else if t == a {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                Some((literal, template, item))
            })
            .max_by_key(|(literal, _, _)| *literal)
            .map(|(_, t, item)| (t.clone(), item))
    }

    /// The operation's parameters with the path item's, `$ref`s resolved.
    fn parameters<'a>(&'a self, item: &'a Value, op: &'a Value) -> Vec<&'a Value> {
        let mut out: Vec<&Value> = Vec::new();
        for list in [op.get("parameters"), item.get("parameters")] {
            for p in list.and_then(Value::as_array).into_iter().flatten() {
                let p = self.resolve(p);
                let key = |p: &Value| (p.get("in").cloned(), p.get("name").cloned());
                if !out.iter().any(|q| key(q) == key(p)) {
                    out.push(p);
                }
            }
        }
        out
    }

    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        for _ in 0..32 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return v;
            };
            let Some(target) = r
                .strip_prefix('#')
                .and_then(|pointer| self.doc.pointer(pointer))
            else {
                return v;
            };
            v = target;
        }
        v
    }

    /// A parameter's schema: OpenAPI 3 `schema`, or the Swagger 2 parameter itself.
    fn param_schema<'a>(&'a self, p: &'a Value) -> &'a Value {
        self.resolve(p.get("schema").unwrap_or(p))
    }

    fn check_param(&self, p: &Value, raw: &str, at: &str, errors: &mut Violations) {
        let schema = self.param_schema(p);
        let value = if type_of(schema) == Some("array") {
            let items = schema.get("items").map(|i| self.resolve(i));
            let parts: Vec<Value> = raw
                .split(',')
                .map(|s| coerce(items.and_then(type_of), s))
                .collect();
            Value::Array(parts)
        } else {
            coerce(type_of(schema), raw)
        };
        self.check(schema, &value, at, errors);
    }

    fn check_body(
        &self,
        req: &HttpRequest,
        op: &Value,
        params: &[&Value],
        at: &str,
        errors: &mut Violations,
    ) {
        let content_type = req.header("content-type").map(|c| {
            c.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
        // OpenAPI 3.
        if let Some(body) = op.get("requestBody").map(|b| self.resolve(b)) {
            let must = body.get("required").and_then(Value::as_bool) == Some(true);
            if req.body.is_empty() {
                if must {
                    errors.push(format!("{at}: the operation requires a body"));
                }
                return;
            }
            let Some(content) = body.get("content").and_then(Value::as_object) else {
                return;
            };
            let Some(ct) = content_type.as_deref() else {
                errors.push(format!("{at}: a body without Content-Type"));
                return;
            };
            let Some(media) = content.get(ct) else {
                let known: Vec<&String> = content.keys().collect();
                errors.push(format!("{at}: Content-Type {ct} is not one of {known:?}"));
                return;
            };
            let schema = media
                .get("schema")
                .map(|s| self.resolve(s))
                .unwrap_or(&Value::Null);
            match self.decode_body(ct, &req.body, schema) {
                Ok(v) => self.check(schema, &v, at, errors),
                Err(e) => errors.push(format!("{at}: {e}")),
            }
            return;
        }
        // Swagger 2.0: one `in: body` parameter, or `in: formData` ones.
        if let Some(p) = params
            .iter()
            .find(|p| p.get("in") == Some(&Value::from("body")))
        {
            if req.body.is_empty() {
                if required(p) {
                    errors.push(format!("{at}: the operation requires a body"));
                }
                return;
            }
            let schema = self.param_schema(p);
            match serde_json::from_slice::<Value>(&req.body) {
                Ok(v) => self.check(schema, &v, at, errors),
                Err(e) => errors.push(format!("{at}: not JSON: {e}")),
            }
            return;
        }
        let form: Vec<&&Value> = params
            .iter()
            .filter(|p| p.get("in") == Some(&Value::from("formData")))
            .collect();
        if !form.is_empty() {
            let fields = parse_form(&req.body);
            for (k, v) in &fields {
                match form.iter().find(|p| is(p, "formData", k)) {
                    Some(p) => self.check_param(p, v, &format!("{at}.{k}"), errors),
                    None => errors.push(format!("{at}: unknown form field {k:?}")),
                }
            }
            for p in form.iter().filter(|p| required(p)) {
                let pname = p.get("name").and_then(Value::as_str).unwrap_or_default();
                if !fields.iter().any(|(k, _)| k == pname) {
                    errors.push(format!("{at}: required form field {pname:?} is missing"));
                }
            }
        } else if !req.body.is_empty() && !matches!(req.method.as_str(), "GET" | "DELETE") {
            errors.push(format!("{at}: the operation takes no body"));
        }
    }

    /// A body as the value its schema describes: JSON as is; form fields as
    /// an object whose values are coerced to the property types.
    fn decode_body(
        &self,
        content_type: &str,
        body: &[u8],
        schema: &Value,
    ) -> Result<Value, String> {
        if content_type == "application/x-www-form-urlencoded" {
            let props = schema.get("properties").and_then(Value::as_object);
            let mut out = Map::new();
            for (k, v) in parse_form(body) {
                let t = props
                    .and_then(|p| p.get(&k))
                    .map(|s| self.resolve(s))
                    .and_then(type_of);
                out.insert(k, coerce(t, &v));
            }
            return Ok(Value::Object(out));
        }
        if content_type.contains("json") {
            return serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"));
        }
        Ok(Value::String(String::from_utf8_lossy(body).into_owned()))
    }

    /// Checks `value` against `schema`, recording every violation under `at`.
    pub fn check(&self, schema: &Value, value: &Value, at: &str, errors: &mut Violations) {
        let schema = self.resolve(schema);
        if !schema.is_object() {
            return;
        }
        if value.is_null() {
            let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true)
                || schema.get("x-nullable").and_then(Value::as_bool) == Some(true)
                || type_of(schema).is_none();
            if !nullable {
                errors.push(format!("{at}: null is not allowed"));
            }
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(s, value, at, errors);
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                let fits = options.iter().any(|s| {
                    let mut e = Vec::new();
                    self.check(s, value, at, &mut e);
                    e.is_empty()
                });
                if !fits {
                    errors.push(format!("{at}: fits none of the {key} schemas"));
                }
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            errors.push(format!(
                "{at}: {value} is not one of {}",
                Value::from(allowed.clone())
            ));
        }
        let Some(t) = type_of(schema) else { return };
        let fits = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !fits {
            errors.push(format!("{at}: {value} is not {}", an(t)));
            return;
        }
        match value {
            Value::Object(map) => {
                let props = schema.get("properties").and_then(Value::as_object);
                for r in schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if !map.contains_key(r) {
                        errors.push(format!("{at}: required field {r:?} is missing"));
                    }
                }
                let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
                for (k, v) in map {
                    match props.and_then(|p| p.get(k)) {
                        Some(s) => self.check(s, v, &format!("{at}.{k}"), errors),
                        None if closed => errors.push(format!("{at}: unknown field {k:?}")),
                        None => {
                            if let Some(extra) = schema.get("additionalProperties")
                                && extra.is_object()
                            {
                                self.check(extra, v, &format!("{at}.{k}"), errors);
                            }
                        }
                    }
                }
            }
            Value::Array(items) => {
                bound(
                    schema,
                    "minItems",
                    items.len() as f64,
                    at,
                    "items",
                    |a, b| a < b,
                    errors,
                );
                bound(
                    schema,
                    "maxItems",
                    items.len() as f64,
                    at,
                    "items",
                    |a, b| a > b,
                    errors,
                );
                if let Some(s) = schema.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        self.check(s, v, &format!("{at}[{i}]"), errors);
                    }
                }
            }
            Value::String(s) => {
                let n = s.chars().count() as f64;
                bound(
                    schema,
                    "minLength",
                    n,
                    at,
                    "characters",
                    |a, b| a < b,
                    errors,
                );
                bound(
                    schema,
                    "maxLength",
                    n,
                    at,
                    "characters",
                    |a, b| a > b,
                    errors,
                );
                if schema.get("format").and_then(Value::as_str) == Some("date-time")
                    && chrono::DateTime::parse_from_rfc3339(s).is_err()
                {
                    errors.push(format!("{at}: {s:?} is not an RFC 3339 date-time"));
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(0.0);
                bound(schema, "minimum", x, at, "", |a, b| a < b, errors);
                bound(schema, "maximum", x, at, "", |a, b| a > b, errors);
            }
            _ => {}
        }
    }
}

fn base_path(doc: &Value) -> String {
    if let Some(base) = doc.get("basePath").and_then(Value::as_str) {
        return base.trim_end_matches('/').to_owned();
    }
    let Some(server) = doc.pointer("/servers/0") else {
        return String::new();
    };
    let mut url = server
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(vars) = server.get("variables").and_then(Value::as_object) {
        for (k, v) in vars {
            let default = v.get("default").and_then(Value::as_str).unwrap_or_default();
            url = url.replace(&format!("{{{k}}}"), default);
        }
    }
    let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) => after_scheme[i..].trim_end_matches('/').to_owned(),
        None => String::new(),
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is(p: &Value, place: &str, name: &str) -> bool {
    p.get("in").and_then(Value::as_str) == Some(place)
        && p.get("name").and_then(Value::as_str) == Some(name)
}

fn required(p: &Value) -> bool {
    p.get("required").and_then(Value::as_bool) == Some(true)
}

fn type_of(schema: &Value) -> Option<&str> {
    schema.get("type").and_then(Value::as_str)
}

fn an(t: &str) -> String {
    match t {
        "object" | "array" | "integer" => format!("an {t}"),
        _ => format!("a {t}"),
    }
}

/// A text value (query, path, form) as the JSON value its type describes;
/// left a string when it does not parse, so the type check reports it.
fn coerce(t: Option<&str>, raw: &str) -> Value {
    match t {
        Some("integer") => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(raw)),
        Some("number") => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::from(raw)),
        Some("boolean") => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::from(raw),
        },
        _ => Value::from(raw),
    }
}

fn bound(
    schema: &Value,
    key: &str,
    actual: f64,
    at: &str,
    unit: &str,
    broken: impl Fn(f64, f64) -> bool,
    errors: &mut Violations,
) {
    if let Some(limit) = schema.get(key).and_then(Value::as_f64)
        && broken(actual, limit)
    {
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        errors.push(format!("{at}: {actual}{unit} breaks {key} {limit}"));
    }
}

pub(crate) fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(method: &str, path: &str, query: &[(&str, &str)], body: Value) -> HttpRequest {
        let (headers, body) = if body.is_null() {
            (vec![], vec![])
        } else {
            (
                vec![("content-type".to_owned(), "application/json".to_owned())],
                serde_json::to_vec(&body).unwrap_or_default(),
            )
        };
        HttpRequest {
            method: method.into(),
            path: path.into(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            headers,
            body,
        }
    }

    fn oas3() -> OpenApi {
        OpenApi::from_value(json!({
            "openapi": "3.0.0",
            "servers": [{ "url": "https://api.example.com{basePath}",
                          "variables": { "basePath": { "default": "/sell/v1" } } }],
            "paths": {
                "/order/{orderId}/ship": {
                    "post": {
                        "operationId": "ship",
                        "parameters": [{ "name": "orderId", "in": "path", "required": true,
                                         "schema": { "type": "string" } }],
                        "requestBody": { "required": true, "content": { "application/json": {
                            "schema": { "$ref": "#/components/schemas/Ship" } } } }
                    }
                },
                "/order": {
                    "get": {
                        "operationId": "list",
                        "parameters": [
                            { "name": "limit", "in": "query", "schema": { "type": "integer", "maximum": 200 } },
                            { "name": "status", "in": "query", "required": true,
                              "schema": { "type": "string", "enum": ["open", "paid"] } }
                        ]
                    }
                }
            },
            "components": { "schemas": { "Ship": {
                "type": "object", "required": ["lines"],
                "properties": {
                    "lines": { "type": "array", "minItems": 1, "items": { "type": "object",
                        "properties": { "id": { "type": "string" }, "quantity": { "type": "integer", "minimum": 1 } } } },
                    "shippedAt": { "type": "string", "format": "date-time" }
                }
            } } }
        }))
    }

    #[test]
    fn documented_requests_pass_and_name_their_operation() {
        let api = oas3();
        assert_eq!(api.base_path(), "/sell/v1");
        let ok = request(
            "POST",
            "/sell/v1/order/12-34/ship",
            &[],
            json!({ "lines": [{ "id": "1", "quantity": 2 }], "shippedAt": "2026-11-25T12:00:00.000Z" }),
        );
        assert_eq!(api.validate(&ok), Ok("ship".to_owned()));
        let list = request(
            "GET",
            "/sell/v1/order",
            &[("limit", "50"), ("status", "paid")],
            Value::Null,
        );
        assert_eq!(api.validate(&list), Ok("list".to_owned()));
    }

    #[test]
    fn every_violation_is_named() {
        let api = oas3();
        let bad = request(
            "GET",
            "/sell/v1/order",
            &[("limit", "500"), ("sort", "x")],
            Value::Null,
        );
        let errors = api.validate(&bad).unwrap_err();
        let all = errors.join("\n");
        assert!(all.contains("query limit: 500 breaks maximum 200"), "{all}");
        assert!(all.contains("unknown query parameter \"sort\""), "{all}");
        assert!(
            all.contains("required parameter \"status\" is missing"),
            "{all}"
        );

        let body = request(
            "POST",
            "/sell/v1/order/1/ship",
            &[],
            json!({ "lines": [{ "id": 7, "quantity": 0 }], "shippedAt": "yesterday" }),
        );
        let all = api.validate(&body).unwrap_err().join("\n");
        assert!(all.contains("body.lines[0].id: 7 is not a string"), "{all}");
        assert!(
            all.contains("body.lines[0].quantity: 0 breaks minimum 1"),
            "{all}"
        );
        assert!(all.contains("not an RFC 3339 date-time"), "{all}");
        let missing = request("POST", "/sell/v1/order/1/ship", &[], Value::Null);
        assert!(api.validate(&missing).unwrap_err()[0].contains("requires a body"));
        let nowhere = request("GET", "/sell/v1/orders", &[], Value::Null);
        assert!(api.validate(&nowhere).unwrap_err()[0].contains("no such path"));
    }

    #[test]
    fn swagger_2_form_fields_and_body_parameters_are_checked() {
        let api = OpenApi::from_value(json!({
            "swagger": "2.0",
            "paths": {
                "/shops/{shop}/receipts/{receipt}/tracking": { "post": {
                    "operationId": "track",
                    "parameters": [
                        { "name": "shop", "in": "path", "required": true, "type": "integer" },
                        { "name": "receipt", "in": "path", "required": true, "type": "integer" },
                        { "name": "tracking_code", "in": "formData", "required": true, "type": "string" },
                        { "name": "send_bcc", "in": "formData", "type": "boolean" }
                    ]
                } },
                "/listings/{sku}": { "patch": {
                    "parameters": [
                        { "name": "sku", "in": "path", "required": true, "type": "string" },
                        { "name": "marketplaceIds", "in": "query", "required": true, "type": "array",
                          "items": { "type": "string" }, "collectionFormat": "csv" },
                        { "name": "body", "in": "body", "required": true,
                          "schema": { "type": "object", "required": ["patches"],
                                      "properties": { "patches": { "type": "array" } } } }
                    ]
                } }
            }
        }));
        let mut form = request("POST", "/shops/42/receipts/7/tracking", &[], Value::Null);
        form.body = b"tracking_code=1Z%20999&send_bcc=true".to_vec();
        assert_eq!(api.validate(&form), Ok("track".to_owned()));
        form.body = b"send_bcc=maybe&carrier=ups".to_vec();
        let all = api.validate(&form).unwrap_err().join("\n");
        assert!(all.contains("\"maybe\" is not a boolean"), "{all}");
        assert!(all.contains("unknown form field \"carrier\""), "{all}");
        assert!(
            all.contains("required form field \"tracking_code\" is missing"),
            "{all}"
        );
        let bad_id = request("POST", "/shops/abc/receipts/7/tracking", &[], Value::Null);
        assert!(
            api.validate(&bad_id)
                .unwrap_err()
                .join("\n")
                .contains("shop: \"abc\" is not an integer")
        );

        let patch = request(
            "PATCH",
            "/listings/MUG%2DRED",
            &[("marketplaceIds", "ATVPDKIKX0DER,A2EUQ1WTGCTBG2")],
            json!({ "patches": [] }),
        );
        assert_eq!(api.validate(&patch), Ok("PATCH /listings/{sku}".to_owned()));
        let no_body = request(
            "PATCH",
            "/listings/X",
            &[("marketplaceIds", "A")],
            Value::Null,
        );
        assert!(api.validate(&no_body).unwrap_err()[0].contains("requires a body"));
    }
}
