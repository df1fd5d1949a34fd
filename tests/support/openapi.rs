//! Responses checked against the service's own OpenAPI document (`/v1/openapi.json`): the path and
//! method are documented, every query parameter is declared (and within its enum), the status and
//! content type are listed, and JSON bodies match their schema. A small validator for the JSON
//! Schema subset the document uses: `$ref`, `type`, `nullable`, `enum`, `required`, `properties`,
//! `additionalProperties: false`, `items`, `allOf` (each part alone), `minimum`/`maximum`, `date-time`.

use serde_json::Value;

use super::QueryService;

pub struct Spec(Value);

impl Spec {
    pub fn fetch(svc: &QueryService) -> Spec {
        let (code, ct, body) = svc.fetch("GET", "/v1/openapi.json", &[], None);
        assert_eq!(code, 200, "openapi.json: {body}");
        assert!(ct.starts_with("application/json"), "openapi.json content type {ct}");
        let spec: Value = serde_json::from_str(&body).expect("openapi.json is JSON");
        assert_eq!(spec["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        Spec(spec)
    }

    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let mut at = &self.0;
            for part in r.trim_start_matches("#/").split('/') {
                at = &at[part];
            }
            assert!(!at.is_null(), "dangling $ref {r}");
            v = at;
        }
        v
    }

    /// GET `path` (as `token` when given) from `svc` and check the answer; returns (status, body).
    pub fn get(&self, svc: &QueryService, path: &str, token: Option<&str>) -> (u16, String) {
        let auth = token.map(|t| format!("Authorization: Bearer {t}"));
        let headers: Vec<&str> = auth.iter().map(String::as_str).collect();
        let (code, ct, body) = svc.fetch("GET", path, &headers, None);
        self.check("GET", path, code, &ct, &body);
        (code, body)
    }

    /// POST /v1/sql with `accept` and check the answer; returns (status, body).
    pub fn sql(&self, svc: &QueryService, sql: &str, accept: &str) -> (u16, String) {
        let accept = format!("Accept: {accept}");
        let (code, ct, body) = svc.fetch("POST", "/v1/sql", &[&accept, "Content-Type: text/plain"], Some(sql));
        self.check("POST", "/v1/sql", code, &ct, &body);
        (code, body)
    }

    pub fn check(&self, method: &str, path: &str, status: u16, content_type: &str, body: &str) {
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        let paths = self.0["paths"].as_object().expect("paths");
        let (template, item) = paths
            .iter()
            .find(|(t, _)| template_matches(t, route))
            .unwrap_or_else(|| panic!("{method} {route} is not in the OpenAPI document"));
        let op = item
            .get(method.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("{method} {template} is not in the OpenAPI document"));
        let params: Vec<&Value> =
            op["parameters"].as_array().map(|a| a.iter().map(|p| self.resolve(p)).collect()).unwrap_or_default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let p = params
                .iter()
                .find(|p| p["name"] == name && p["in"] == "query")
                .unwrap_or_else(|| panic!("{method} {template}: query parameter {name} is not documented"));
            if let Some(values) = p["schema"]["enum"].as_array()
                && status < 400
            {
                assert!(values.iter().any(|v| v == value), "{template}: {name}={value} outside its enum {values:?}");
            }
        }
        let responses = &op["responses"];
        let response = responses
            .get(status.to_string())
            .map(|r| self.resolve(r))
            .unwrap_or_else(|| panic!("{method} {path}: status {status} is not documented for {template}: {body}"));
        let media = content_type.split(';').next().unwrap_or("").trim();
        let content = response["content"]
            .get(media)
            .unwrap_or_else(|| panic!("{method} {path}: {status} {media} is not documented for {template}"));
        if media == "application/json" {
            let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
            if let Err(e) = self.validate(&value, &content["schema"], "$") {
                panic!("{method} {path} ({status}) does not match its schema: {e}\n{body}");
            }
        }
    }

    fn validate(&self, v: &Value, schema: &Value, at: &str) -> Result<(), String> {
        let schema = self.resolve(schema);
        if v.is_null() && schema["nullable"] == true {
            return Ok(());
        }
        // As JSON Schema defines it: the value must be valid against each part alone (a part's
        // `additionalProperties: false` refuses the properties the others add) and against the
        // rest of the schema. (Merging the parts first accepted a document no strict validator
        // would: an incident report extending a closed summary.)
        if let Some(all) = schema["allOf"].as_array() {
            for part in all {
                self.validate(v, part, at)?;
            }
            let mut rest = schema.as_object().cloned().unwrap_or_default();
            rest.remove("allOf");
            return self.validate(v, &Value::Object(rest), at);
        }
        if let Some(values) = schema["enum"].as_array()
            && !values.contains(v)
        {
            return Err(format!("{at}: {v} is not one of {values:?}"));
        }
        let ty = schema["type"].as_str().unwrap_or("");
        let ok = match ty {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "" => true,
            other => return Err(format!("{at}: the validator has no type {other}")),
        };
        if !ok {
            return Err(format!("{at}: {v} is not of type {ty}"));
        }
        if let Some(x) = v.as_f64()
            && (schema["minimum"].as_f64().is_some_and(|m| x < m) || schema["maximum"].as_f64().is_some_and(|m| x > m))
        {
            return Err(format!("{at}: {x} is out of range"));
        }
        if schema["format"] == "date-time" {
            let s = v.as_str().unwrap_or("");
            chrono::DateTime::parse_from_rfc3339(s).map_err(|e| format!("{at}: {s:?} is no RFC 3339 time: {e}"))?;
        }
        if let Some(obj) = v.as_object() {
            for r in schema["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap();
                if !obj.contains_key(r) {
                    return Err(format!("{at}: missing {r}"));
                }
            }
            let props = schema["properties"].as_object();
            for (k, value) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => self.validate(value, s, &format!("{at}.{k}"))?,
                    None if schema["additionalProperties"] == false => return Err(format!("{at}: undocumented property {k}")),
                    None => {}
                }
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
            for (i, item) in arr.iter().enumerate() {
                self.validate(item, items, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }
}

fn template_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| a == b || (a.starts_with('{') && a.ends_with('}') && !b.is_empty()))
}
