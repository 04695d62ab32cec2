//! One GraphQL request, from its text to its response: guard → parse → guard → authorize →
//! validate → coerce variables → decode each root field into its operation → run it →
//! encode the result. Every transport (HTTP POST and GET, WebSocket, SSE) runs requests
//! through [`execute`]; each step is a traced span.
//!
//! async-graphql does the validation (against the schema built once per release) and nothing
//! after it: [`ValidateOnly`] ends its execution right there. Execution is arcbase's own, so
//! that a root field is one call of the operations layer with typed arguments, and the answer
//! follows the spec for every selection (fragments on the `HypiRootAggregate` union, nulls in
//! lists of enums) rather than a library's limits.

use std::sync::Arc;

use async_graphql::dynamic::Schema;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::parser::types::{
    BaseType, Directive, ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet, Type,
};
use async_graphql::registry::{MetaType, Registry};
use async_graphql::{Name, Positioned, Value, Variables};
use serde_json::{json, Map, Value as Json};
use tracing::Instrument;

use super::collect::{Env, Group};
use super::compiled::{Compiled, OperationCache, Parsed, Plans};
use super::decode::{agg_fields, paging, read_plan, Args};
use super::encode::{absorb, write_json, Encoder, In, Step, CONCRETE};
use super::guard;
use super::introspection::Introspection;
use super::response::{Data, GqlError, Location, Outcome, PathSegment, Response};
use super::schema::{Shapes, Ty};
use crate::access::Viewer;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::model::Model;
use crate::ops::{self, Caller, Engine};
use crate::plan::read::ObjectSelection;

/// One release, ready to serve GraphQL.
pub struct Served {
    pub engine: Arc<Engine>,
    /// Validation, introspection and the printed SDL.
    pub schema: Schema,
    pub shapes: Shapes,
    /// The node's operation cache (shared by every release; entries are per release).
    pub operations: Arc<OperationCache>,
}

/// A GraphQL request as a transport received it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub query: String,
    pub operation_name: Option<String>,
    /// The `variables` object (`null` or absent: none).
    pub variables: Json,
}

/// What the transport knows about the request besides its body.
pub struct Context<'a> {
    pub caller: &'a Caller,
    /// Callers without credentials may use every operation, not only login and registration.
    pub anonymous_requests: bool,
    /// Only queries may run (GET: a mutation must not ride on a link).
    pub only_queries: bool,
    /// Credential checks (`login`, `loginByEmail`, `createAccount`) this transport request has
    /// made so far (a batch shares one count).
    pub credentials: &'a std::sync::atomic::AtomicUsize,
}

/// Root fields a caller without credentials may always use: logging in and registering
/// (which checks the instance's setting itself).
const OPEN_FIELDS: &[&str] = &["login", "loginByEmail", "createAccount"];

/// Run one request.
pub async fn execute(served: &Served, ctx: &Context<'_>, req: Request) -> (Response, Outcome) {
    match run(served, ctx, req).await {
        Ok(done) => done,
        Err(Refused(outcome, errors)) => (Response::request_error(errors), outcome),
    }
}

/// A request that was not executed, and why.
#[derive(Debug, Clone)]
pub(crate) struct Refused(Outcome, Vec<GqlError>);

#[cfg(test)]
impl Refused {
    pub(crate) fn test(message: &str) -> Refused {
        Refused(Outcome::RequestError, vec![GqlError::new(ErrorCode::GraphqlValidation, message)])
    }
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Refused(Outcome::RequestError, vec![GqlError::from_api(e, Vec::new(), None)])
    }
}

/// The `data` object being written: the members placed so far, as JSON text.
#[derive(Default)]
struct DataOut {
    bytes: Vec<u8>,
}

impl DataOut {
    /// Open the member `key` (after a comma if one came before): the buffer to write its
    /// value into.
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        self.bytes.push(if self.bytes.is_empty() { b'{' } else { b',' });
        write_json(&mut self.bytes, key);
        self.bytes.push(b':');
        &mut self.bytes
    }

    fn finish(mut self) -> Data {
        if self.bytes.is_empty() {
            self.bytes.push(b'{');
        }
        self.bytes.push(b'}');
        Data::written(self.bytes)
    }
}

/// A document that passed every check before execution.
struct Checked {
    parsed: Arc<Parsed>,
    /// Coerced against the operation's declarations.
    variables: Variables,
}

impl Checked {
    fn doc(&self) -> &ExecutableDocument {
        &self.parsed.doc
    }

    fn operation_name(&self) -> Option<&str> {
        self.parsed.operation_name.as_deref()
    }
}

/// What the request's text comes to under the served release: from the operation cache, or
/// compiled now (and kept, unless the context asks for a fresh compile).
async fn compiled(served: &Served, fresh: bool, query: &str, name: Option<&str>) -> Arc<Compiled> {
    let release = served.engine.release_tag;
    if !fresh {
        if let Some(c) = served.operations.get(release, query, name) {
            return c;
        }
    }
    let c = Arc::new(compile(served, query, name).await);
    if !fresh {
        served.operations.put(c.clone());
    }
    c
}

/// Compile `query` into the operation cache now, so that a later request with this text is a
/// hit (warming a node; the differential test).
pub async fn prepare(served: &Served, query: &str, operation_name: Option<&str>) {
    compiled(served, false, query, operation_name).await;
}

/// Everything about a request that depends on its text alone (see [`super::compiled`]).
async fn compile(served: &Served, query: &str, name: Option<&str>) -> Compiled {
    let limits = &served.engine.limits;
    let scan = guard::scan(query, limits).map_err(Refused::from);
    if let Err(e) = &scan {
        return Compiled::new(served.engine.release_tag, query, name, scan.clone(), Err(e.clone()));
    }
    let parsed = tracing::info_span!("parse").in_scope(|| -> Result<_, Refused> {
        let doc = async_graphql::parser::parse_query(query).map_err(syntax_error)?;
        guard::check(&doc, name, limits)?;
        let op = operation(&doc, name)?;
        let (ty, open_only, credential_checks) =
            (op.ty, only_open_fields(&doc, &op.selection_set.node), credential_fields(&doc, &op.selection_set.node, 0));
        let plans = (!uses_variables(&doc, &op.selection_set.node, false, 0)).then(Plans::default);
        Ok((doc, ty, open_only, credential_checks, plans))
    });
    let parsed = match parsed {
        Ok((doc, ty, open_only, credential_checks, plans)) => {
            let validation = validate(served, &doc, name).instrument(tracing::info_span!("validate")).await;
            Ok(Arc::new(Parsed {
                doc,
                operation_name: name.map(Into::into),
                ty,
                open_only,
                credential_checks,
                validation,
                plans,
            }))
        }
        Err(e) => Err(e),
    };
    Compiled::new(served.engine.release_tag, query, name, scan, parsed)
}

/// Guard, parse, authorize, validate and coerce: everything a request goes through before it
/// runs, whatever runs it. The checks that depend on the text alone come from the
/// [`Compiled`] operation, met in the order they would be if each ran now.
async fn check(served: &Served, ctx: &Context<'_>, req: Request) -> Result<Checked, Refused> {
    let limits = &served.engine.limits;
    let compiled = compiled(served, ctx.caller.fresh, &req.query, req.operation_name.as_deref()).await;
    compiled.scan.clone()?;
    let variables = match req.variables {
        Json::Null => Variables::default(),
        v @ Json::Object(_) => Variables::from_json(v),
        _ => return Err(ApiError::validation("'variables' must be an object").into()),
    };
    guard::check_variables(&variables, limits)?;
    let parsed = compiled.parsed.as_ref().map_err(Clone::clone)?;
    if ctx.only_queries && parsed.ty != OperationType::Query {
        return Err(Refused(
            Outcome::MutationNotAllowed,
            vec![GqlError::new(ErrorCode::Forbidden, "mutations are not allowed over GET; use POST")],
        ));
    }
    if ctx.caller.viewer == Viewer::Anonymous && !ctx.anonymous_requests && !parsed.open_only {
        return Err(Refused(
            Outcome::Unauthenticated,
            vec![GqlError::new(ErrorCode::Unauthenticated, "authentication required")],
        ));
    }
    // Each credential check costs a password hash: a few per HTTP request, batch included.
    let checks = parsed.credential_checks;
    let before = ctx.credentials.fetch_add(checks, std::sync::atomic::Ordering::Relaxed);
    if checks > 0 && before + checks > limits.credential_checks {
        return Err(ApiError::limit(format!(
            "a request may check credentials (login, loginByEmail, createAccount) at most {} time(s)",
            limits.credential_checks
        ))
        .into());
    }
    parsed.validation.clone()?;
    let op = operation(&parsed.doc, parsed.operation_name.as_deref())?;
    let variables = coerce_variables(served.schema.registry(), &op.variable_definitions, &variables)?;
    Ok(Checked { parsed: parsed.clone(), variables })
}

async fn run(served: &Served, ctx: &Context<'_>, req: Request) -> Result<(Response, Outcome), Refused> {
    let c = check(served, ctx, req).await?;
    let op = operation(c.doc(), c.operation_name())?;
    let registry = served.schema.registry();
    let env = Env { doc: c.doc(), variables: &c.variables, shapes: &served.shapes };
    let plans = if ctx.caller.fresh { None } else { c.parsed.plans.as_ref() };
    let exec = Exec { served, caller: ctx.caller, env: &env, registry, plans };
    let mut response = exec.operation(op).await;
    let pending = ctx.caller.pending.take();
    if !pending.is_empty() {
        response.extensions = Some(serde_json::json!({ "hyper": { "pending": pending } }));
    }
    Ok((response, Outcome::Executed))
}

/// Is the operation of this document (the named one, or the only one) a subscription? (A
/// document that does not compile is taken as one: the subscription path reports its errors.)
pub async fn is_subscription(served: &Served, query: &str, operation_name: Option<&str>) -> bool {
    let c = compiled(served, false, query, operation_name).await;
    if c.scan.is_err() {
        return true;
    }
    match &c.parsed {
        Ok(p) => p.ty == OperationType::Subscription,
        // Refused after the parse (by the guard, say): the kind of the operation still decides
        // which path reports it.
        Err(_) => match async_graphql::parser::parse_query(query) {
            Ok(doc) => operation(&doc, operation_name).map_or(true, |op| op.ty == OperationType::Subscription),
            Err(_) => true,
        },
    }
}

/// A subscription, checked and decoded: what `realtime` drives and how its events are encoded.
pub struct Subscription {
    served: Arc<Served>,
    checked: Checked,
    /// The operation's arguments.
    pub args: ops::stream::StreamArgs,
    /// Identical subscriptions (instance, viewer, document, operation, variables) share the
    /// reading and encoding of each batch under this key.
    pub key: String,
}

/// Check a subscription request and decode its root field (exactly one: the spec's rule).
pub async fn subscription(
    served: Arc<Served>,
    ctx: &Context<'_>,
    req: Request,
) -> Result<Subscription, (Outcome, Vec<GqlError>)> {
    let query = req.query.clone();
    let refused = |Refused(o, e)| (o, e);
    let checked = check(&served, ctx, req).await.map_err(refused)?;
    let op = operation(checked.doc(), checked.operation_name()).map_err(refused)?;
    if op.ty != OperationType::Subscription {
        let e = GqlError::new(
            ErrorCode::GraphqlValidation,
            "this endpoint streams subscriptions; send queries and mutations to POST /graphql",
        );
        return Err((Outcome::RequestError, vec![e]));
    }
    let args = {
        let env = Env { doc: checked.doc(), variables: &checked.variables, shapes: &served.shapes };
        let exec =
            Exec { served: &served, caller: ctx.caller, env: &env, registry: served.schema.registry(), plans: None };
        let api = |e: ApiError| (Outcome::RequestError, vec![GqlError::from_api(e, Vec::new(), None)]);
        let groups = env.collect("Subscription", &[&op.selection_set.node]).map_err(api)?;
        let [g] = groups.as_slice() else {
            let e = GqlError::new(ErrorCode::GraphqlValidation, "a subscription selects exactly one root field");
            return Err((Outcome::RequestError, vec![e]));
        };
        exec.stream_args(g).map_err(|e| {
            let loc = Some(Location::from(g.first().pos));
            (Outcome::RequestError, vec![GqlError::from_api(e, vec![PathSegment::Key(g.key.to_string())], loc)])
        })?
    };
    let key = format!(
        "{}\u{0}{:?}\u{0}{}\u{0}{}\u{0}{}",
        ctx.caller.instance,
        ctx.caller.viewer,
        query,
        checked.operation_name().unwrap_or(""),
        checked.variables.clone().into_value()
    );
    Ok(Subscription { served, checked, args, key })
}

impl Subscription {
    pub fn engine(&self) -> &Arc<Engine> {
        &self.served.engine
    }

    /// Each event as a GraphQL response (`{"data": {...}}`, with `errors` when a value did not
    /// fit its type).
    pub fn encode(&self, caller: &Caller, events: &[ops::stream::Event]) -> Vec<Response> {
        let c = &self.checked;
        let env = Env { doc: c.doc(), variables: &c.variables, shapes: &self.served.shapes };
        let exec =
            Exec { served: &self.served, caller, env: &env, registry: self.served.schema.registry(), plans: None };
        let Ok(op) = operation(c.doc(), c.operation_name()) else { return Vec::new() };
        let Ok(groups) = env.collect("Subscription", &[&op.selection_set.node]) else { return Vec::new() };
        let Some(g) = groups.first() else { return Vec::new() };
        events
            .iter()
            .map(|ev| {
                let value = exec.event_value(g.name(), ev);
                let mut data = DataOut::default();
                let mut errors = Vec::new();
                let r = Outcome1 { value: Ok(Answer::Json(value)), errors: Vec::new() };
                if !exec.place("Subscription", g, r, &mut data, &mut errors) {
                    return Response { data: Some(Data::null()), errors, extensions: None };
                }
                Response { data: Some(data.finish()), errors, extensions: None }
            })
            .collect()
    }
}

/// The parser's error as one line with its location.
fn syntax_error(e: async_graphql::parser::Error) -> Refused {
    let text = e.to_string();
    // pest renders a multi-line picture of the error; its last `= ...` line says what was
    // expected.
    let message = match text.lines().rev().find_map(|l| l.trim().strip_prefix("= ")) {
        Some(what) => format!("syntax error: {what}"),
        None => format!("syntax error: {}", text.lines().next().unwrap_or("invalid document")),
    };
    let locations = e.positions().map(Location::from).collect();
    let mut err = GqlError::new(ErrorCode::GraphqlValidation, message);
    err.locations = locations;
    Refused(Outcome::RequestError, vec![err])
}

/// The operation to run: the one named, or the only one.
fn operation<'d>(doc: &'d ExecutableDocument, name: Option<&str>) -> Result<&'d OperationDefinition, Refused> {
    let refuse = |m: String| Refused(Outcome::RequestError, vec![GqlError::new(ErrorCode::GraphqlValidation, m)]);
    match name {
        Some(n) => doc
            .operations
            .iter()
            .find(|(on, _)| on.is_some_and(|on| on.as_str() == n))
            .map(|(_, op)| &op.node)
            .ok_or_else(|| refuse(format!("unknown operation named \"{n}\""))),
        None => {
            let mut ops = doc.operations.iter();
            match (ops.next(), ops.next()) {
                (Some((_, op)), None) => Ok(&op.node),
                (None, _) => Err(refuse("the document defines no operation".into())),
                _ => Err(refuse("the document defines several operations: give an operationName".into())),
            }
        }
    }
}

/// Could a variable change what `set` reads or answers below its root fields: a variable in a
/// directive anywhere, or in an argument of a field below the root (fragments followed)?
/// `below`: `set` is a field's sub-selection rather than the operation's.
fn uses_variables(doc: &ExecutableDocument, set: &SelectionSet, below: bool, depth: usize) -> bool {
    // A value holds a variable when making it constant without any variable fails.
    macro_rules! has {
        ($v:expr) => {
            $v.node.clone().into_const_with(|_: Name| Err::<Value, ()>(())).is_err()
        };
    }
    let directives = |ds: &[Positioned<Directive>]| ds.iter().any(|d| d.node.arguments.iter().any(|(_, v)| has!(v)));
    // Deeper than the guard lets a document nest: treated as variable (never cached).
    depth > 64
        || set.items.iter().any(|item| match &item.node {
            Selection::Field(f) => {
                directives(&f.node.directives)
                    || (below && f.node.arguments.iter().any(|(_, v)| has!(v)))
                    || uses_variables(doc, &f.node.selection_set.node, true, depth + 1)
            }
            Selection::InlineFragment(i) => {
                directives(&i.node.directives) || uses_variables(doc, &i.node.selection_set.node, below, depth + 1)
            }
            Selection::FragmentSpread(s) => {
                directives(&s.node.directives)
                    || doc.fragments.get(&s.node.fragment_name.node).is_some_and(|f| {
                        directives(&f.node.directives)
                            || uses_variables(doc, &f.node.selection_set.node, below, depth + 1)
                    })
            }
        })
}

/// Does the selection use only [`OPEN_FIELDS`] at the root?
fn only_open_fields(doc: &ExecutableDocument, set: &SelectionSet) -> bool {
    fn open(doc: &ExecutableDocument, set: &SelectionSet, depth: usize) -> bool {
        depth < 32
            && set.items.iter().all(|item| match &item.node {
                Selection::Field(f) => OPEN_FIELDS.contains(&f.node.name.node.as_str()),
                Selection::InlineFragment(i) => open(doc, &i.node.selection_set.node, depth + 1),
                Selection::FragmentSpread(s) => doc
                    .fragments
                    .get(&s.node.fragment_name.node)
                    .is_none_or(|f| open(doc, &f.node.selection_set.node, depth + 1)),
            })
    }
    open(doc, set, 0)
}

/// How many root fields of `set` check credentials (fragments followed).
fn credential_fields(doc: &ExecutableDocument, set: &SelectionSet, depth: usize) -> usize {
    if depth > 32 {
        return 0;
    }
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => usize::from(OPEN_FIELDS.contains(&f.node.name.node.as_str())),
            Selection::InlineFragment(i) => credential_fields(doc, &i.node.selection_set.node, depth + 1),
            Selection::FragmentSpread(s) => doc
                .fragments
                .get(&s.node.fragment_name.node)
                .map_or(0, |f| credential_fields(doc, &f.node.selection_set.node, depth + 1)),
        })
        .sum()
}

/// Ends async-graphql's execution once validation has passed: arcbase executes the
/// operation itself.
pub struct ValidateOnly;

struct ValidateOnlyExtension;

impl ExtensionFactory for ValidateOnly {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ValidateOnlyExtension)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ValidateOnlyExtension {
    async fn execute(
        &self,
        _ctx: &ExtensionContext<'_>,
        _operation_name: Option<&str>,
        _next: NextExecute<'_>,
    ) -> async_graphql::Response {
        async_graphql::Response::new(Value::Null)
    }
}

/// Validate the document against the release's schema (without variables: their values are
/// checked against their declared types by [`coerce_variables`], so a document's verdict
/// does not depend on them).
async fn validate(served: &Served, doc: &ExecutableDocument, operation_name: Option<&str>) -> Result<(), Refused> {
    let mut r = async_graphql::Request::new(String::new());
    if let Some(n) = operation_name {
        r = r.operation_name(n);
    }
    r.set_parsed_query(doc.clone());
    let resp = served.schema.execute(r).await;
    if resp.errors.is_empty() {
        return Ok(());
    }
    let errors = resp
        .errors
        .into_iter()
        .map(|e| {
            // A literal argument of the wrong type is a VALIDATION error like the operations'
            // own; everything else is the document being invalid.
            let code = if e.message.starts_with("Invalid value for argument") {
                ErrorCode::Validation
            } else {
                ErrorCode::GraphqlValidation
            };
            let mut g = GqlError::new(code, e.message);
            g.locations = e.locations.into_iter().map(Location::from).collect();
            g
        })
        .collect();
    Err(Refused(Outcome::RequestError, errors))
}

// --- variables ---------------------------------------------------------------------------------

/// The variables of `defs`, checked against their declared types and with their defaults
/// (the spec's CoerceVariableValues). A value that does not fit is a request error naming the
/// variable and where in it the problem is.
fn coerce_variables(
    registry: &Registry,
    defs: &[Positioned<async_graphql::parser::types::VariableDefinition>],
    given: &Variables,
) -> Result<Variables, Refused> {
    let mut out = Variables::default();
    let mut errors = Vec::new();
    for def in defs {
        let def = &def.node;
        let name = &def.name.node;
        let ty = ty_of(&def.var_type.node);
        match given.get(name) {
            Some(v) => match coerce(registry, &ty, v, &mut vec![format!("${name}")], None) {
                Ok(c) => {
                    out.insert(name.clone(), c);
                }
                Err(why) => errors.push(GqlError::new(
                    ErrorCode::Validation,
                    format!("variable \"${name}\" got invalid value {}: {why}", short(v)),
                )),
            },
            None => match &def.default_value {
                Some(d) => {
                    out.insert(name.clone(), d.node.clone());
                }
                None if matches!(ty, Ty::NonNull(_)) => errors.push(GqlError::new(
                    ErrorCode::Validation,
                    format!("variable \"${name}\" of required type {} was not provided", def.var_type.node),
                )),
                None => {}
            },
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Refused(Outcome::RequestError, errors))
    }
}

fn ty_of(t: &Type) -> Ty {
    let inner = match &t.base {
        BaseType::Named(n) => Ty::Named(n.to_string()),
        BaseType::List(inner) => Ty::List(Box::new(ty_of(inner))),
    };
    if t.nullable {
        inner
    } else {
        Ty::NonNull(Box::new(inner))
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

/// The model field an input field of `input` stands for: `Book.title` for a field of
/// `BookInput` or `BookInputOpt` (the generated input types), else `Input.field`.
fn qualified(input: &str, field: &str) -> String {
    let ty = input.strip_suffix("InputOpt").or_else(|| input.strip_suffix("Input")).unwrap_or(input);
    format!("{ty}.{field}")
}

/// One value against one input type; `path` says where in the variable we are, `field`
/// which field of the model it is for.
fn coerce(
    registry: &Registry,
    ty: &Ty,
    v: &Value,
    path: &mut Vec<String>,
    field: Option<&str>,
) -> Result<Value, String> {
    let here = {
        let at = if path.is_empty() { String::new() } else { format!(" (at {})", path.join(".")) };
        move |what: String| match field {
            Some(f) => format!("{f}: {what}{at}"),
            None => format!("{what}{at}"),
        }
    };
    match ty {
        Ty::NonNull(inner) => {
            if *v == Value::Null {
                return Err(here("expected a non-null value".into()));
            }
            coerce(registry, inner, v, path, field)
        }
        _ if *v == Value::Null => Ok(Value::Null),
        Ty::List(inner) => match v {
            Value::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    out.push(coerce(registry, inner, item, path, field)?);
                    path.pop();
                }
                Ok(Value::List(out))
            }
            // Input coercion: one value where a list is expected is a list of one.
            one => Ok(Value::List(vec![coerce(registry, inner, one, path, field)?])),
        },
        Ty::Named(name) => {
            let cannot = |what: &str| here(format!("{what} cannot represent {}", short(v)));
            match (name.as_str(), v) {
                ("Int", Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(v.clone()),
                ("Int", _) => Err(cannot("Int")),
                ("Float", Value::Number(_)) => Ok(v.clone()),
                ("Float", _) => Err(cannot("Float")),
                ("String", Value::String(_)) => Ok(v.clone()),
                ("String", _) => Err(cannot("String")),
                ("Boolean", Value::Boolean(_)) => Ok(v.clone()),
                ("Boolean", _) => Err(cannot("Boolean")),
                ("ID", Value::String(_)) => Ok(v.clone()),
                ("ID", Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Value::String(n.to_string())),
                ("ID", _) => Err(cannot("ID")),
                _ => match registry.types.get(name) {
                    // DateTime, Long, Json: the operations check the value against the field.
                    Some(MetaType::Scalar { .. }) => Ok(v.clone()),
                    Some(MetaType::Enum { enum_values, .. }) => {
                        let given = match v {
                            Value::String(s) => Some(s.as_str()),
                            Value::Enum(n) => Some(n.as_str()),
                            _ => None,
                        };
                        match given {
                            Some(s) if enum_values.contains_key(s) => Ok(Value::Enum(Name::new(s))),
                            _ => Err(here(format!("{} is not a value of the enum {name}", short(v)))),
                        }
                    }
                    Some(MetaType::InputObject { input_fields, .. }) => {
                        let Value::Object(given) = v else {
                            return Err(here(format!("expected an object of type {name}, got {}", short(v))));
                        };
                        // In the order given: `upsert` answers its objects in input order.
                        let mut out = async_graphql::indexmap::IndexMap::with_capacity(given.len());
                        for (key, x) in given {
                            let Some(f) = input_fields.get(key.as_str()) else {
                                return Err(here(format!("{name} has no field '{key}'")));
                            };
                            path.push(key.to_string());
                            let q = qualified(name, key);
                            let c = coerce(registry, &Ty::parse(&f.ty), x, path, Some(&q))?;
                            path.pop();
                            out.insert(key.clone(), c);
                        }
                        for (fname, f) in input_fields {
                            if !given.contains_key(fname.as_str())
                                && matches!(Ty::parse(&f.ty), Ty::NonNull(_))
                                && f.default_value.is_none()
                            {
                                return Err(here(format!("{} is required", qualified(name, fname))));
                            }
                        }
                        Ok(Value::Object(out))
                    }
                    _ => Err(here(format!("{name} is not an input type"))),
                },
            }
        }
    }
}

// --- execution ---------------------------------------------------------------------------------

struct Exec<'a> {
    served: &'a Served,
    caller: &'a Caller,
    env: &'a Env<'a>,
    registry: &'a Registry,
    /// The operation's cached read plans; `None`: plan every root field now.
    plans: Option<&'a Plans>,
}

/// What a `find`'s selection asks of it: the node selections, and which parts of the page
/// info that cost reads of their own.
#[derive(Default)]
struct FindWants<'a> {
    nodes: Vec<&'a SelectionSet>,
    next_offsets: bool,
    previous_offsets: bool,
    has_next: bool,
    has_previous: bool,
}

/// A root field's result before encoding, or its error, and errors of its parts (the fields
/// of `aggregate`).
struct Outcome1 {
    value: ApiResult<Answer>,
    errors: Vec<GqlError>,
}

/// A root field's result: JSON in the model's types, or (`get`, `find`) the objects as their
/// statements wrote them, which the encoder writes from that text (`graphql::raw`). A request
/// that plans afresh (`Caller::fresh`, the differential tests' shadow) decodes them into JSON
/// first, the general path, so the two answers are compared byte for byte.
enum Answer {
    Json(Json),
    /// An object and its type.
    Object(ops::read::Doc, usize),
    /// A `find` page: its edges, its page info, the type of its nodes.
    Page(Vec<ops::read::Edge>, Json, usize),
}

impl<'a> Exec<'a> {
    fn engine(&self) -> &Engine {
        &self.served.engine
    }

    fn model(&self) -> &Model {
        &self.served.engine.model
    }

    async fn operation(&self, op: &OperationDefinition) -> Response {
        let root = match op.ty {
            OperationType::Query => "Query",
            OperationType::Mutation => "Mutation",
            OperationType::Subscription => {
                return Response::request_error(vec![GqlError::new(
                    ErrorCode::GraphqlValidation,
                    "subscriptions are served over WebSocket (/graphql) and server-sent events (/graphql/stream)",
                )])
            }
        };
        let groups = match self.env.collect(root, &[&op.selection_set.node]) {
            Ok(g) => g,
            Err(e) => return Response::request_error(vec![GqlError::from_api(e, Vec::new(), None)]),
        };
        let mut errors = Vec::new();
        let mut data = DataOut::default();
        if op.ty == OperationType::Query {
            // Query fields are independent reads: run them at once.
            let results = futures_util::future::join_all(groups.iter().map(|g| self.root_field(root, g))).await;
            for (g, r) in groups.iter().zip(results) {
                if !self.place(root, g, r, &mut data, &mut errors) {
                    return Response { data: Some(Data::null()), errors, extensions: None };
                }
            }
        } else {
            // Mutations run one after the other, each in its own transaction; after one fails
            // in a way that nulls `data`, the rest do not run.
            for g in &groups {
                let r = self.root_field(root, g).await;
                if !self.place(root, g, r, &mut data, &mut errors) {
                    return Response { data: Some(Data::null()), errors, extensions: None };
                }
            }
        }
        Response { data: Some(data.finish()), errors, extensions: None }
    }

    /// Encode a root field's result into `data`; `false` when `data` must become null.
    fn place(&self, root: &str, g: &Group<'a>, r: Outcome1, data: &mut DataOut, errors: &mut Vec<GqlError>) -> bool {
        errors.extend(r.errors);
        let name = g.name();
        let location = Some(Location::from(g.first().pos));
        let ty = match name {
            "__typename" | "__schema" | "__type" => None,
            _ => {
                let served = self.served;
                served.shapes.objects.get(root).and_then(|o| o.get(name)).map(|f| &f.ty)
            }
        };
        let value = match r.value {
            Ok(v) => v,
            Err(e) => {
                errors.push(GqlError::from_api(e, vec![PathSegment::Key(g.key.to_string())], location));
                return match &ty {
                    Some(Ty::NonNull(_)) => false,
                    _ => {
                        write_json(data.key(g.key), &Json::Null);
                        true
                    }
                };
            }
        };
        let input = match &value {
            Answer::Json(v) => In::Json(v),
            Answer::Object(doc, t) => In::Object(doc, &self.model().types[*t].name),
            Answer::Page(edges, page_info, t) => In::Page(edges, page_info, &self.model().types[*t].name),
        };
        let Some(ty) = ty else {
            // Introspection and `__typename`: already in their final form.
            match input {
                In::Json(v) => write_json(data.key(g.key), v),
                _ => write_json(data.key(g.key), &Json::Null),
            }
            return true;
        };
        let mut enc = Encoder::new(self.env, errors);
        let mut path = vec![Step::Key(g.key)];
        let out = data.key(g.key);
        let start = out.len();
        let r = enc.value(ty, Some(input), &g.sets(), &mut path, out);
        absorb(ty, start, out, r).is_ok()
    }

    async fn root_field(&self, root: &str, g: &Group<'a>) -> Outcome1 {
        let name = g.name();
        let span = tracing::info_span!("field", name);
        let plain = |value: ApiResult<Json>| Outcome1 { value: value.map(Answer::Json), errors: Vec::new() };
        let read = |value: ApiResult<Answer>| Outcome1 { value, errors: Vec::new() };
        async {
            match name {
                "__typename" => plain(Ok(Json::String(root.to_string()))),
                "__schema" => plain(Introspection { registry: self.registry, env: self.env }.schema(&g.sets())),
                "__type" => {
                    let args = Args { env: self.env, field: &g.first().node };
                    plain(match args.required("name") {
                        Ok(n) => Introspection { registry: self.registry, env: self.env }.type_named(&n, &g.sets()),
                        Err(e) => Err(e),
                    })
                }
                "aggregate" => self.aggregate(g).await,
                "get" => read(self.get(g).await),
                "find" => read(self.find(g).await),
                _ => plain(self.operation_field(g).await),
            }
        }
        .instrument(span)
        .await
    }

    /// The read plan of root field `g` reading `type_idx` with the selections `sets`: the
    /// operation's cached one when it keeps plans, else made now.
    fn read_plan(&self, g: &Group<'a>, type_idx: usize, sets: &[&SelectionSet]) -> ApiResult<Arc<ObjectSelection>> {
        self.kept_plan(g, type_idx, sets).map(|(plan, _)| plan)
    }

    /// [`Exec::read_plan`], and the statements rendered for it when the operation keeps plans.
    fn kept_plan(
        &self,
        g: &Group<'a>,
        type_idx: usize,
        sets: &[&SelectionSet],
    ) -> ApiResult<(Arc<ObjectSelection>, Option<Arc<ops::read::GetStatements>>)> {
        let make = || {
            tracing::info_span!("plan")
                .in_scope(|| read_plan(self.env, self.model(), &self.engine().limits, type_idx, sets))
        };
        match self.plans {
            Some(plans) => {
                let ((plan, statements), reused) = plans.get_or_make(g.key, type_idx, make)?;
                self.served.operations.count_plan(reused);
                Ok((plan, Some(statements)))
            }
            None => make().map(|p| (Arc::new(p), None)),
        }
    }

    /// The type named by argument `arg` of a root field.
    fn type_arg(&self, args: &Args<'_>, arg: &str) -> ApiResult<usize> {
        let name = args.name(arg)?.ok_or_else(|| ApiError::validation(format!("argument '{arg}' is required")))?;
        self.engine().type_index(&name)
    }

    /// `get`: the object as its statement wrote it (decoded when planning afresh).
    async fn get(&self, g: &Group<'a>) -> ApiResult<Answer> {
        let args = Args { env: self.env, field: &g.first().node };
        let type_idx = self.type_arg(&args, "type")?;
        let (selection, statements) = self.kept_plan(g, type_idx, &g.sets())?;
        let a = ops::read::GetArgs {
            type_idx,
            id: args.required("id")?,
            include_trashed: args.flag("includeTrashed"),
            selection,
            statements,
        };
        Ok(match ops::read::get(self.engine(), self.caller, &a).await? {
            None => Answer::Json(Json::Null),
            Some(doc) => Answer::Object(self.decoded_if_fresh(doc, &a.selection)?, type_idx),
        })
    }

    /// A document as the encoder gets it: as its statement wrote it, or decoded into JSON when
    /// planning afresh (the general path, for the differential to compare with).
    fn decoded_if_fresh(&self, doc: ops::read::Doc, selection: &ObjectSelection) -> ApiResult<ops::read::Doc> {
        match doc {
            ops::read::Doc::Text(_) if self.caller.fresh => {
                Ok(ops::read::Doc::Json(doc.into_json(self.model(), selection)?))
            }
            doc => Ok(doc),
        }
    }

    /// `find`: a connection over the objects as their statement wrote them (decoded when
    /// planning afresh).
    async fn find(&self, g: &Group<'a>) -> ApiResult<Answer> {
        let args = Args { env: self.env, field: &g.first().node };
        let type_idx = self.type_arg(&args, "type")?;
        let conn_sets = g.sets();
        let wants = self.find_selection(&conn_sets)?;
        let selection = self.read_plan(g, type_idx, &wants.nodes)?;
        let a = ops::read::FindArgs {
            type_idx,
            arcql: args.required("arcql")?,
            paging: paging(&args)?,
            include_trashed: args.flag("includeTrashed"),
            selection,
            want_next_offsets: wants.next_offsets,
            want_previous_offsets: wants.previous_offsets,
            want_has_previous: wants.has_previous,
            want_has_next: wants.has_next,
        };
        let mut c = ops::read::find(self.engine(), self.caller, &a).await?;
        for e in &mut c.edges {
            let doc = std::mem::replace(&mut e.node, ops::read::Doc::Json(Json::Null));
            e.node = self.decoded_if_fresh(doc, &a.selection)?;
        }
        let p = c.page_info;
        let offsets = |o: Option<Vec<String>>| o.map_or(Json::Null, |o| o.into_iter().map(Json::String).collect());
        let page_info = page_info([
            ("hasPreviousPage", Json::Bool(p.has_previous_page)),
            ("hasNextPage", Json::Bool(p.has_next_page)),
            ("startCursor", Json::String(p.start_cursor)),
            ("endCursor", Json::String(p.end_cursor)),
            ("pageLimit", Json::from(p.page_limit)),
            ("nextOffsets", offsets(p.next_offsets)),
            ("previousOffsets", offsets(p.previous_offsets)),
        ]);
        Ok(Answer::Page(c.edges, page_info, type_idx))
    }

    /// Decode a root field into its operation, run it, and give its result as JSON shaped
    /// like the field's output type.
    async fn operation_field(&self, g: &Group<'a>) -> ApiResult<Json> {
        let engine = self.engine();
        let caller = self.caller;
        let args = Args { env: self.env, field: &g.first().node };
        let type_of = |arg: &str| -> ApiResult<usize> {
            let name = args.name(arg)?.ok_or_else(|| ApiError::validation(format!("argument '{arg}' is required")))?;
            engine.type_index(&name)
        };
        let count = |n: ApiResult<u64>| n.map(|n| json!(n));
        match g.name() {
            "search" => {
                let type_idx = type_of("type")?;
                let conn_sets = g.sets();
                let node_sets = self.find_selection(&conn_sets)?.nodes;
                let selection = self.read_plan(g, type_idx, &node_sets)?;
                let service = caller
                    .hyper
                    .as_ref()
                    .map(|t| t.search.clone())
                    .ok_or_else(|| ApiError::validation("this server has no search service"))?;
                let a = ops::search::SearchArgs {
                    type_idx,
                    query: args.required("query")?,
                    filter: args.string("filter")?,
                    first: args.int("first")?,
                    after: args.string("after")?,
                    selection,
                };
                let p = ops::search::search(engine, caller, service.as_ref(), &a).await?;
                let start = p.edges.first().map_or_else(|| ops::read::FIRST.to_string(), |e| e.cursor.clone());
                let end = p.edges.last().map_or_else(|| ops::read::LAST.to_string(), |e| e.cursor.clone());
                let edges = p
                    .edges
                    .into_iter()
                    .map(|e| edge(self.tagged(e.node, type_idx), e.cursor, Some(json!(e.score))))
                    .collect();
                Ok(connection(
                    edges,
                    [
                        ("hasPreviousPage", Json::Bool(p.has_previous_page)),
                        ("hasNextPage", Json::Bool(p.has_next_page)),
                        ("startCursor", Json::String(start)),
                        ("endCursor", Json::String(end)),
                        ("pageLimit", json!(p.page_limit)),
                        ("nextOffsets", Json::Null),
                        ("previousOffsets", Json::Null),
                    ],
                ))
            }
            "count" => Ok(json!(ops::aggregate::count(engine, caller, type_of("type")?).await?)),
            name @ ("login" | "loginByEmail") => {
                let by_email = name == "loginByEmail";
                let a = ops::account::LoginArgs {
                    by_email,
                    who: args.required(if by_email { "email" } else { "username" })?,
                    password: args.required("password")?,
                };
                to_json(&ops::account::login(engine, caller, &a).await?)
            }
            "upsert" => {
                let records =
                    ops::upsert::upsert(engine, caller, &ops::upsert::UpsertArgs { values: args.json("values")? })
                        .await?;
                to_json(&records)
            }
            name @ ("trash" | "untrash") => count(
                ops::bulk::trash(
                    engine,
                    caller,
                    &ops::bulk::TrashArgs {
                        type_idx: type_of("type")?,
                        arcql: args.required("arcql")?,
                        restore: name == "untrash",
                    },
                )
                .await,
            ),
            "delete" => count(
                ops::bulk::delete(
                    engine,
                    caller,
                    &ops::bulk::DeleteArgs {
                        type_idx: type_of("type")?,
                        arcql: args.required("arcql")?,
                        clear_array_references: args.flag("clearArrayReferences"),
                    },
                )
                .await,
            ),
            "deleteScalars" => count(
                ops::bulk::delete_scalars(
                    engine,
                    caller,
                    &ops::bulk::DeleteScalarsArgs {
                        type_idx: type_of("type")?,
                        field: args.required("field")?,
                        values: args.strings("values")?,
                        arcql: args.required("arcql")?,
                    },
                )
                .await,
            ),
            name @ ("link" | "unlink") => {
                let a = ops::link::LinkArgs {
                    from: type_of("from")?,
                    to: type_of("to")?,
                    via: args.required("via")?,
                    from_id: args.required("whereFromID")?,
                    to_id: args.required("andToID")?,
                    add: name == "link",
                };
                ops::link::link(engine, caller, &a).await.map(Json::Bool)
            }
            "createAccount" => {
                let a = ops::account::CreateAccountArgs { value: args.json("value")? };
                to_json(&ops::account::create_account(engine, caller, &a).await?)
            }
            other => Err(ApiError::validation(format!("unknown root field '{other}'"))),
        }
    }

    /// A document of the model's type `type_idx` as a value of the union: it names its type.
    /// The arguments of a subscription's root field `g` and the selections of the objects its
    /// events carry.
    fn stream_args(&self, g: &Group<'a>) -> ApiResult<ops::stream::StreamArgs> {
        use crate::feed::ChangeOp;
        let engine = self.engine();
        let args = Args { env: self.env, field: &g.first().node };
        let limits = &engine.limits;
        match g.name() {
            "changes" => {
                let name = args.name("type")?.ok_or_else(|| ApiError::validation("argument 'type' is required"))?;
                let type_idx = engine.type_index(&name)?;
                let mut node_sets = Vec::new();
                for part in self.env.collect("Change", &g.sets())? {
                    if part.name() == "node" {
                        node_sets.extend(part.sets());
                    }
                }
                let selection = read_plan(self.env, self.model(), limits, type_idx, &node_sets)?;
                let op_of = |v: Value| -> ApiResult<ChangeOp> {
                    let text = match v {
                        Value::Enum(n) => n.to_string(),
                        Value::String(t) => t,
                        other => return Err(ApiError::validation(format!("'ops': {other} is not an operation"))),
                    };
                    ChangeOp::parse(&text).ok_or_else(|| {
                        ApiError::validation(format!(
                            "'ops': {text} is not an operation of the feed (CURRENT is sent only by includeCurrent)"
                        ))
                    })
                };
                let ops = match args.value("ops") {
                    None | Some(Value::Null) => None,
                    Some(Value::List(items)) => Some(items.into_iter().map(op_of).collect::<ApiResult<Vec<_>>>()?),
                    Some(one) => Some(vec![op_of(one)?]),
                };
                let ids = match args.value("ids") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(args.strings("ids")?),
                };
                Ok(ops::stream::StreamArgs {
                    type_idx: Some(type_idx),
                    arcql: args.string("arcql")?,
                    ids,
                    ops,
                    after: args.string("after")?,
                    previous: args.int("previous")?,
                    include_current: args.flag("includeCurrent"),
                    selections: vec![(type_idx, selection)],
                })
            }
            "subscribe" => {
                let mut selections = Vec::new();
                for part in self.env.collect("HypiSubscriptionUnion", &g.sets())? {
                    if let Ok(t) = engine.type_index(part.name()) {
                        let sel = read_plan(self.env, self.model(), limits, t, &part.sets())?;
                        selections.push((t, sel));
                    }
                }
                Ok(ops::stream::StreamArgs {
                    type_idx: None,
                    arcql: None,
                    ids: args.string("id")?.map(|id| vec![id]),
                    ops: Some(vec![ChangeOp::Insert, ChangeOp::Update]),
                    after: None,
                    previous: None,
                    include_current: false,
                    selections,
                })
            }
            other => Err(ApiError::validation(format!("'{other}' is not a subscription"))),
        }
    }

    /// The value of a subscription's root field `name` for one event.
    fn event_value(&self, name: &str, ev: &ops::stream::Event) -> Json {
        let c = &ev.change;
        match name {
            "subscribe" => json!({ c.type_name.clone(): ev.node.clone() }),
            _ => json!({
                "cursor": c.seq.to_string(),
                "op": if ev.current { "CURRENT".to_string() } else { c.op.as_str().to_ascii_uppercase() },
                "id": c.id,
                "type": c.type_name,
                "version": c.version,
                "at": c.at,
                "node": ev.node.clone().map(|n| self.tagged(n, ev.type_idx)),
            }),
        }
    }

    fn tagged(&self, mut doc: Json, type_idx: usize) -> Json {
        if let Json::Object(o) = &mut doc {
            o.insert(CONCRETE.to_string(), Json::String(self.model().types[type_idx].name.clone()));
        }
        doc
    }

    /// What `find`'s selection asks of the connection: the node selections, and whether
    /// `pageInfo.nextOffsets` / `previousOffsets` are selected (they cost a statement each).
    fn find_selection(&self, conn: &[&'a SelectionSet]) -> ApiResult<FindWants<'a>> {
        let mut w = FindWants::default();
        for part in self.env.collect("HypiFilterConnection", conn)? {
            match part.name() {
                "edges" => {
                    for e in self.env.collect("HypiResultEdge", &part.sets())? {
                        if e.name() == "node" {
                            w.nodes.extend(e.sets());
                        }
                    }
                }
                "pageInfo" => {
                    for p in self.env.collect("PageInfo", &part.sets())? {
                        match p.name() {
                            "nextOffsets" => w.next_offsets = true,
                            "previousOffsets" => w.previous_offsets = true,
                            "hasNextPage" => w.has_next = true,
                            "hasPreviousPage" => w.has_previous = true,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(w)
    }

    /// `aggregate { x(where) { ... } xWith(groupBy: ...) { ... } }`: each field is one
    /// operation; a failing one is null with its error, the others still answer.
    async fn aggregate(&self, g: &Group<'a>) -> Outcome1 {
        let engine = self.engine();
        let model = self.model();
        let subs = match self.env.collect("HypiAggregationType", &g.sets()) {
            Ok(s) => s,
            Err(e) => return Outcome1 { value: Err(e), errors: Vec::new() },
        };
        let mut out = Map::new();
        let mut errors = Vec::new();
        for sub in &subs {
            let name = sub.name();
            if name == "__typename" {
                continue;
            }
            let r = self.aggregate_field(engine, model, sub).await;
            let key = crate::plan::read::ref_key(sub.key);
            match r {
                Ok((v, out_of_range)) => {
                    // A result beyond the range of a Float is null, with an error where it is.
                    for (index, field, func) in out_of_range {
                        let mut path = vec![PathSegment::Key(g.key.to_string()), PathSegment::Key(sub.key.to_string())];
                        path.extend(index.map(PathSegment::Index));
                        path.push(PathSegment::Key(field.clone()));
                        path.push(PathSegment::Key(func.clone()));
                        let e =
                            ApiError::validation(format!("the '{func}' of '{field}' is beyond the range of a Float"));
                        errors.push(GqlError::from_api(e, path, Some(Location::from(sub.first().pos))));
                    }
                    out.insert(key, v);
                }
                Err(e) => {
                    let path = vec![PathSegment::Key(g.key.to_string()), PathSegment::Key(sub.key.to_string())];
                    errors.push(GqlError::from_api(e, path, Some(Location::from(sub.first().pos))));
                    out.insert(key, Json::Null);
                }
            }
        }
        Outcome1 { value: Ok(Answer::Json(Json::Object(out))), errors }
    }

    /// One field of `aggregate`: its value, and the results beyond a Float's range (group
    /// index, field key, function key).
    async fn aggregate_field(
        &self,
        engine: &Engine,
        model: &Model,
        sub: &Group<'a>,
    ) -> ApiResult<(Json, Vec<(Option<usize>, String, String)>)> {
        let name = sub.name();
        let (type_idx, grouped) = model
            .types
            .iter()
            .enumerate()
            .find_map(|(i, t)| {
                let lower = Model::lower_first(&t.name);
                if name == lower {
                    Some((i, false))
                } else if name.strip_suffix("With") == Some(lower.as_str()) {
                    Some((i, true))
                } else {
                    None
                }
            })
            .ok_or_else(|| ApiError::validation(format!("unknown aggregate '{name}'")))?;
        let args = Args { env: self.env, field: &sub.first().node };
        let fields = agg_fields(self.env, model, type_idx, &sub.sets())?;
        let mut a = ops::aggregate::AggregateArgs { type_idx, fields, where_: args.string("where")?, grouping: None };
        if !grouped {
            let r = ops::aggregate::aggregate(engine, self.caller, &a).await?;
            return Ok((r.doc, r.out_of_range.into_iter().map(|(f, c)| (None, f, c)).collect()));
        }
        let mut group_by = Vec::new();
        if let Some(Value::List(items)) = args.value("groupBy") {
            for item in items {
                let Value::Object(o) = item else { continue };
                let text = |k: &str| match o.get(k) {
                    Some(Value::Enum(n)) => Some(n.to_string()),
                    Some(Value::String(s)) => Some(s.clone()),
                    _ => None,
                };
                let Some(field) = text("field") else {
                    return Err(ApiError::validation("groupBy: every entry needs a field"));
                };
                group_by.push(ops::aggregate::GroupBy {
                    field,
                    desc: text("order").as_deref() == Some("DESC"),
                    granularity: text("dateGranularity"),
                });
            }
        }
        a.grouping = Some(ops::aggregate::Grouping {
            group_by,
            having: args.string("having")?,
            paging: paging(&args)?,
            include_trashed: args.flag("includeTrashed"),
        });
        let groups = ops::aggregate::aggregate_groups(engine, self.caller, &a).await?;
        let mut out_of_range = Vec::new();
        let mut docs = Vec::with_capacity(groups.len());
        for (i, g) in groups.into_iter().enumerate() {
            out_of_range.extend(g.out_of_range.into_iter().map(|(f, c)| (Some(i), f, c)));
            docs.push(g.doc);
        }
        Ok((Json::Array(docs), out_of_range))
    }
}

/// One edge of a connection (`score`: search's relevance). Built member by member: `json!`
/// would serialize its interpolated values again, a deep copy of every document.
fn edge(node: Json, cursor: String, score: Option<Json>) -> Json {
    let mut e = Map::with_capacity(3);
    e.insert("node".into(), node);
    e.insert("cursor".into(), Json::String(cursor));
    if let Some(score) = score {
        e.insert("score".into(), score);
    }
    Json::Object(e)
}

/// A connection's value from its edges and the members of its page info.
fn connection(edges: Vec<Json>, members: [(&str, Json); 7]) -> Json {
    let mut c = Map::with_capacity(2);
    c.insert("edges".into(), Json::Array(edges));
    c.insert("pageInfo".into(), page_info(members));
    Json::Object(c)
}

/// A connection's `pageInfo` from its members.
fn page_info(members: [(&str, Json); 7]) -> Json {
    Json::Object(members.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn to_json<T: serde::Serialize>(v: &T) -> ApiResult<Json> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDL: &str = "type Book { title: String  price: Float  tags: [String]  author: Author  related: [Book!] }\n\
                       type Author { name: String  books: [Book!] }";

    /// xorshift: reproducible documents without a dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// A random selection of `ty` (Book or Author) nested up to `depth`, with literals or
    /// variables in directives and list arguments; `vars` is set when a variable was used.
    fn selection(rng: &mut Rng, ty: &str, depth: u32, vars: &mut bool) -> String {
        let directive = |rng: &mut Rng, vars: &mut bool| match rng.below(16) {
            0 => " @include(if: true)".to_string(),
            1 => " @skip(if: false)".to_string(),
            2 => {
                *vars = true;
                " @include(if: $b)".to_string()
            }
            3 => {
                *vars = true;
                " @skip(if: $b)".to_string()
            }
            _ => String::new(),
        };
        let first = |rng: &mut Rng, vars: &mut bool| match rng.below(8) {
            0 | 1 => "(first: 2)".to_string(),
            2 => {
                *vars = true;
                "(first: $n)".to_string()
            }
            _ => String::new(),
        };
        let mut items = Vec::new();
        let fields: &[&str] =
            if ty == "Book" { &["title", "price", "tags", "author", "related"] } else { &["name", "books"] };
        for f in fields {
            if rng.below(3) == 0 {
                continue;
            }
            let item = match *f {
                "tags" => format!("tags{}{}", first(rng, vars), directive(rng, vars)),
                "author" if depth > 0 => {
                    format!("author{} {{ {} }}", directive(rng, vars), selection(rng, "Author", depth - 1, vars))
                }
                "related" | "books" if depth > 0 => format!(
                    "{f}{}{} {{ {} }}",
                    first(rng, vars),
                    directive(rng, vars),
                    selection(rng, "Book", depth - 1, vars)
                ),
                "author" | "related" | "books" => continue,
                _ => format!("{f}{}", directive(rng, vars)),
            };
            items.push(if rng.below(4) == 0 {
                format!("... on {ty}{} {{ {item} }}", directive(rng, vars))
            } else {
                item
            });
        }
        // Always something selected, so the document is valid.
        items.push("__typename".to_string());
        items.join(" ")
    }

    /// The plan cache's key is sound: a document `uses_variables` calls free of variables below
    /// its root gets the same read plan whatever its variables, and the check says "uses" exactly
    /// when a variable sits in a directive or a nested argument (not more often: those texts
    /// would never be cached).
    #[test]
    fn plans_of_texts_kept_in_the_cache_do_not_depend_on_variables() {
        let model = crate::model::parse_sdl(SDL).expect("sdl");
        let limits = crate::config::Limits::default();
        let (_, shapes) = super::super::schema::build_schema(&model, &limits).expect("schema");
        let (book, _) = model.type_by_name("Book").expect("Book");
        let variables = |b: bool, n: i64, id: &str| Variables::from_json(json!({ "b": b, "n": n, "id": id }));
        let (v1, v2) = (variables(true, 1, "x"), variables(false, 3, "y"));
        let mut rng = Rng(0x5eed_cafe);
        let (mut kept, mut planned) = (0, 0);
        for _ in 0..400 {
            let mut vars = false;
            let sel = selection(&mut rng, "Book", 2, &mut vars);
            let text = format!(
                "query($b: Boolean!, $n: Int, $id: String!) {{ get(type: Book, id: $id) {{ ... on Book {{ {sel} }} }} }}"
            );
            let doc = async_graphql::parser::parse_query(&text).expect("parses");
            let op = operation(&doc, None).map_err(|_| "operation").expect("one operation");
            let uses = uses_variables(&doc, &op.selection_set.node, false, 0);
            assert_eq!(uses, vars, "{text}");
            let plan = |v: &Variables| {
                let env = Env { doc: &doc, variables: v, shapes: &shapes };
                let groups = env.collect("Query", &[&op.selection_set.node]).expect("collect");
                read_plan(&env, &model, &limits, book, &groups[0].sets()).expect("plan")
            };
            if uses {
                planned += 1;
            } else {
                kept += 1;
                assert_eq!(plan(&v1), plan(&v2), "a kept plan changed with the variables: {text}");
            }
        }
        assert!(kept > 20 && planned > 20, "both kinds generated: {kept} kept, {planned} planned");
    }
}
