//! A profile as data: what one endpoint's server sends and accepts, how its messages name
//! themselves, which requests it answers, and how a reply is matched to its request. Every
//! command reads this; none knows Bot Core's message names.
//!
//! A profile comes from one channel of an AsyncAPI 3.x document. `--profile core|ai` names the
//! shipped document's channels, with the choices only Bot Core's prose spec makes (its welcome,
//! its broadcasts) layered on from [`SHIPPED`]; `--asyncapi FILE` reads anyone's document.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::asyncapi::{self, AsyncApiError, ChannelSpec, Document, MessageSpec};
use super::{MessageSet, Profile};
use crate::schema::instance::instance;
use crate::schema::{Catalog, Discriminator, Entry, SchemaError, SchemaSource};

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(transparent)]
    Document(#[from] AsyncApiError),
    #[error("{path}: cannot compile the payload schemas of channel {channel:?}: {source}")]
    Schema { path: String, channel: String, source: Box<SchemaError> },
    #[error("{path}: no member tells the messages of channel {channel:?} apart (none has a `const` in every payload); name it with --discriminator POINTER, e.g. --discriminator /event")]
    NoDiscriminator { path: String, channel: String },
    #[error("{path}: message {message:?} of channel {channel:?} fixes no string at {pointer} with `const` (or a one-value `enum`); add one, or pick the member that names messages with --discriminator")]
    Unnamed { path: String, channel: String, message: String, pointer: String },
    #[error("{path}: channel {channel:?} has no messages the server sends; wsprobe checks a server, so at least one `send` operation or `reply` is needed")]
    NothingSent { path: String, channel: String },
}

/// A `receive` operation with a `reply`: requests the server must answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The operation's id, as in `asyncapi.reply.<operation>`.
    pub operation: String,
    /// The requests, by name (the discriminator's value).
    pub requests: Vec<String>,
    /// The names of the messages that may answer.
    pub replies: Vec<String>,
    /// Where the request carries its correlation id (a JSON Pointer), when the document says.
    pub request_correlation: Option<String>,
    /// Where the reply echoes it.
    pub reply_correlation: Option<String>,
}

/// Everything a command needs to know about the endpoint it talks to.
#[derive(Clone)]
pub struct ProfileSpec {
    /// How reports name it: `core`, `ai`, or `feed.yaml#public`.
    pub name: String,
    /// The shipped profile this is: its own scenarios apply.
    pub shipped: Option<Profile>,
    /// The reference server's profile that implements this one, so the bundled server stands
    /// in when no URL is given: the shipped profiles, and the shipped document's channels.
    pub bundled: Option<Profile>,
    pub catalog: Arc<Catalog>,
    /// The set of the catalog holding what the server sends.
    pub server: MessageSet,
    /// The set holding what the server accepts.
    pub client: MessageSet,
    /// The channel's address (`/ws`).
    pub address: Option<String>,
    /// The document's servers, by id, with their URL for this connection or why there is none.
    pub servers: BTreeMap<String, Result<String, AsyncApiError>>,
    /// The message the server sends first on every connection, when the spec names one.
    pub welcome: Option<String>,
    /// Messages the server sends on its own schedule, which no request controls (snapshots
    /// leave them out of exchanges).
    pub broadcasts: Vec<String>,
    /// A message of these names is a broadcast too, unless the member at the pointer holds the
    /// value: Bot Core's Error replies to bad input carry `WEBSOCKET_ERROR` (choice 15), while
    /// its other Errors come from the trading loop.
    pub broadcast_unless: Vec<(String, String, Value)>,
    pub replies: Vec<Reply>,
    /// Requests that carry their send time in milliseconds, by name, and where: Bot Core's Ping
    /// at `/timestamp`, so a load run's Pings are stamped as a client's are.
    pub stamps: Vec<(String, String)>,
    /// The shipped profile a target may have been meant for instead (the wrong-profile hint).
    pub other: Option<Profile>,
}

/// The choices only Bot Core's prose spec makes, per shipped profile (schemas/README.md).
struct Shipped {
    profile: Profile,
    /// The channel of `schemas/asyncapi.yaml`.
    channel: &'static str,
    welcome: &'static str,
    broadcasts: &'static [&'static str],
    /// See [`ProfileSpec::broadcast_unless`].
    broadcast_unless: (&'static str, &'static str, &'static str),
    /// See [`ProfileSpec::stamps`].
    stamp: (&'static str, &'static str),
    other: Profile,
}

const SHIPPED: [Shipped; 2] = [
    Shipped {
        profile: Profile::Core,
        channel: "core",
        welcome: "Connected",
        broadcasts: &[
            "MarketData",
            "ChartUpdate",
            "AISignalReceived",
            "TradeExecuted",
            "PositionUpdate",
            "BotStatusUpdate",
        ],
        broadcast_unless: ("Error", "/data/code", "WEBSOCKET_ERROR"),
        stamp: ("Ping", "/timestamp"),
        other: Profile::Ai,
    },
    Shipped {
        profile: Profile::Ai,
        channel: "ai",
        welcome: "connection",
        broadcasts: &["AISignalReceived"],
        broadcast_unless: ("Error", "/data/code", "WEBSOCKET_ERROR"),
        stamp: ("Ping", "/timestamp"),
        other: Profile::Core,
    },
];

/// The shipped document's path below `schemas/`.
const SHIPPED_DOCUMENT: &str = "asyncapi.yaml";

impl ProfileSpec {
    /// A shipped profile over `catalog` (the embedded schemas, or a `--schemas` folder laid out
    /// like them): its sets are the catalog's folders, its operations the shipped document's.
    pub fn shipped(profile: Profile, catalog: Arc<Catalog>) -> Result<ProfileSpec, ProfileError> {
        let shipped = SHIPPED.iter().find(|s| s.profile == profile).expect("every profile is in SHIPPED");
        let document = shipped_document()?;
        let channel = document.channel(Some(shipped.channel))?;
        let discriminator = catalog.discriminator().clone();
        let replies = replies(&document, &channel, &discriminator)?;
        Ok(ProfileSpec {
            name: profile.name().to_string(),
            shipped: Some(profile),
            bundled: Some(profile),
            catalog,
            server: MessageSet::of(profile, super::Direction::Server),
            client: MessageSet::of(profile, super::Direction::Client),
            address: channel.address.clone(),
            servers: document.server_urls(&channel),
            welcome: Some(shipped.welcome.to_string()),
            broadcasts: shipped.broadcasts.iter().map(|b| b.to_string()).collect(),
            broadcast_unless: vec![(
                shipped.broadcast_unless.0.to_string(),
                shipped.broadcast_unless.1.to_string(),
                Value::from(shipped.broadcast_unless.2),
            )],
            replies,
            stamps: vec![(shipped.stamp.0.to_string(), shipped.stamp.1.to_string())],
            other: Some(shipped.other),
        })
    }

    /// A shipped profile over the embedded schemas, which the test suite checks: a failure is
    /// a build defect.
    pub fn builtin(profile: Profile) -> ProfileSpec {
        let catalog = Catalog::embedded().expect("the embedded schemas compile");
        ProfileSpec::shipped(profile, Arc::new(catalog)).expect("the shipped document describes the shipped profiles")
    }

    /// The profile of one channel of an AsyncAPI document. `discriminator` overrides the one
    /// inferred from the payloads' `const` members.
    pub fn from_document(
        document: &Document,
        channel: Option<&str>,
        discriminator: Option<&str>,
    ) -> Result<ProfileSpec, ProfileError> {
        let shown = document.path().display().to_string();
        let channel = document.channel(channel)?;
        if channel.server_sends.is_empty() {
            return Err(ProfileError::NothingSent { path: shown, channel: channel.id });
        }
        let discriminator = match discriminator {
            Some(pointer) => Discriminator::new(pointer),
            None => {
                let both: Vec<MessageSpec> =
                    channel.server_sends.iter().chain(&channel.server_receives).cloned().collect();
                let inferred =
                    asyncapi::discriminator(&both).or_else(|| asyncapi::discriminator(&channel.server_sends));
                let pointer = inferred.ok_or_else(|| ProfileError::NoDiscriminator {
                    path: shown.clone(),
                    channel: channel.id.clone(),
                })?;
                Discriminator::new(&pointer)
            }
        };
        let catalog = document_catalog(document, &channel, discriminator.clone())?;
        let replies = replies(document, &channel, &discriminator)?;
        let file_name = document.file_name();
        let answered: Vec<&String> = replies.iter().flat_map(|r| &r.replies).collect();
        let broadcasts = channel
            .server_sends
            .iter()
            .filter_map(|m| discriminator.fixed_in(&m.payload))
            .filter(|name| !answered.contains(&name))
            .collect();
        let is_shipped_document = shipped_document().is_ok_and(|shipped| shipped.root() == document.root());
        let bundled = SHIPPED.iter().find(|s| is_shipped_document && s.channel == channel.id).map(|s| s.profile);
        Ok(ProfileSpec {
            name: format!("{file_name}#{}", channel.id),
            shipped: None,
            bundled,
            catalog: Arc::new(catalog),
            server: MessageSet::Server,
            client: MessageSet::Client,
            address: channel.address.clone(),
            servers: document.server_urls(&channel),
            welcome: None,
            broadcasts,
            broadcast_unless: Vec::new(),
            replies,
            stamps: Vec::new(),
            other: None,
        })
    }

    /// The name as part of a file name: `core`, `feed.yaml_public`.
    pub fn file_name(&self) -> String {
        self.name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
    }

    pub fn discriminator(&self) -> &Discriminator {
        self.catalog.discriminator()
    }

    /// The URL of the document's server `id` for this connection.
    pub fn server_url(&self, id: &str) -> Result<String, AsyncApiError> {
        match self.servers.get(id) {
            Some(url) => url.clone(),
            None => {
                let known: Vec<&str> = self.servers.keys().map(String::as_str).collect();
                let known = if known.is_empty() { "no servers".to_string() } else { known.join(", ") };
                Err(AsyncApiError::NoServer { path: self.name.clone(), wanted: id.into(), known })
            }
        }
    }

    /// Whether the server sent `message` on its own schedule rather than in answer to the client.
    pub fn is_broadcast(&self, message: &Value) -> bool {
        let Some(name) = self.discriminator().name_of(message) else { return false };
        self.broadcasts.iter().any(|b| b == name)
            || self
                .broadcast_unless
                .iter()
                .any(|(unless, pointer, value)| unless == name && message.pointer(pointer) != Some(value))
    }

    /// The reply operation `id`.
    pub fn reply(&self, id: &str) -> Option<&Reply> {
        self.replies.iter().find(|r| r.operation == id)
    }

    /// A request of `reply` to send: its name, the message with `correlation` at its correlation
    /// id's place, and that id. The id is the number, or `wsprobe-N` where the example holds a
    /// string there, whichever the request's schema accepts. `None` when the document gives no
    /// valid instance, none can be built, or no id of either kind fits.
    pub fn request(&self, reply: &Reply, correlation: u64) -> Option<(String, Value, Option<Value>)> {
        reply.requests.iter().find_map(|name| {
            let example = self.example(name)?;
            let Some(pointer) = &reply.request_correlation else { return Some((name.clone(), example, None)) };
            let number = Value::from(correlation);
            let text = Value::String(format!("wsprobe-{correlation}"));
            let kinds = match example.pointer(pointer) {
                Some(Value::String(_)) => [text, number],
                _ => [number, text],
            };
            let schema = self.catalog.message(self.client, name)?;
            kinds.into_iter().find_map(|id| {
                let mut message = example.clone();
                *set_pointer(&mut message, pointer)? = id.clone();
                schema.violations(&message).is_empty().then(|| (name.clone(), message, Some(id)))
            })
        })
    }

    /// A valid instance of the client message `name`: its first example that its schema
    /// accepts (a document's own, or one built from the schema).
    pub fn example(&self, name: &str) -> Option<Value> {
        let schema = self.catalog.message(self.client, name)?;
        schema.examples.iter().find(|e| schema.violations(e).is_empty()).cloned()
    }
}

impl std::fmt::Debug for ProfileSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileSpec").field("name", &self.name).field("replies", &self.replies).finish_non_exhaustive()
    }
}

/// The place `pointer` names in `value`, made (as object members) where missing; `None` when
/// a step is not an object.
pub fn set_pointer<'v>(value: &'v mut Value, pointer: &str) -> Option<&'v mut Value> {
    let mut current = value;
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        current = current.as_object_mut()?.entry(token).or_insert(Value::Null);
    }
    Some(current)
}

/// The shipped `schemas/asyncapi.yaml`, its payload files read from the embedded copy.
pub fn shipped_document() -> Result<Document, AsyncApiError> {
    let text = SchemaSource::embedded_text(SHIPPED_DOCUMENT).expect("build.rs embeds schemas/asyncapi.yaml");
    let files = SchemaSource::embedded().files().map(|(path, text)| (path.to_string(), text.to_string())).collect();
    Ok(Document::parse(Path::new(SHIPPED_DOCUMENT), text)?.with_files(files))
}

/// The channel's request/reply operations, each message named by its discriminator value.
fn replies(
    document: &Document,
    channel: &ChannelSpec,
    discriminator: &Discriminator,
) -> Result<Vec<Reply>, ProfileError> {
    let by_name: BTreeMap<&str, &MessageSpec> =
        channel.server_sends.iter().chain(&channel.server_receives).map(|m| (m.name.as_str(), m)).collect();
    let named = |name: &str| -> Result<(String, Option<String>), ProfileError> {
        let message = by_name[name];
        Ok((message_name(document, channel, discriminator, message)?, message.correlation.clone()))
    };
    let mut out = Vec::new();
    for spec in &channel.replies {
        let mut reply = Reply {
            operation: spec.operation.clone(),
            requests: Vec::new(),
            replies: Vec::new(),
            request_correlation: None,
            reply_correlation: None,
        };
        for name in &spec.requests {
            let (fixed, correlation) = named(name)?;
            reply.request_correlation = reply.request_correlation.or(correlation);
            reply.requests.push(fixed);
        }
        // A reply that lists no messages may be any message of the channel the server sends.
        let answers: Vec<&String> = match spec.replies.is_empty() {
            true => channel.server_sends.iter().map(|m| &m.name).collect(),
            false => spec.replies.iter().collect(),
        };
        for name in answers {
            let (fixed, correlation) = named(name)?;
            reply.reply_correlation = reply.reply_correlation.or(correlation);
            reply.replies.push(fixed);
        }
        out.push(reply);
    }
    Ok(out)
}

/// The name `message` gives itself at the discriminator, or the error that says it gives none.
fn message_name(
    document: &Document,
    channel: &ChannelSpec,
    discriminator: &Discriminator,
    message: &MessageSpec,
) -> Result<String, ProfileError> {
    discriminator.fixed_in(&message.payload).ok_or_else(|| ProfileError::Unnamed {
        path: document.path().display().to_string(),
        channel: channel.id.clone(),
        message: message.name.clone(),
        pointer: discriminator.pointer().to_string(),
    })
}

/// Compiles the channel's payloads: each message under its discriminator value, in the set of
/// the side that sends it. Payload files are registered by their path beside the document, with
/// the files they refer to; inline payloads as documents of their own in the document's folder,
/// so their relative `$ref`s resolve the same way.
fn document_catalog(
    document: &Document,
    channel: &ChannelSpec,
    discriminator: Discriminator,
) -> Result<Catalog, ProfileError> {
    let shown = document.path().display().to_string();
    let file_name = document.file_name();
    let schema_error = |source: SchemaError| ProfileError::Schema {
        path: shown.clone(),
        channel: channel.id.clone(),
        source: Box::new(source),
    };
    let mut documents: BTreeMap<String, Value> = BTreeMap::new();
    let mut placed = Vec::new();
    for (set, messages) in [(MessageSet::Server, &channel.server_sends), (MessageSet::Client, &channel.server_receives)]
    {
        for message in messages {
            let message_type = message_name(document, channel, &discriminator, message)?;
            let (file, shown_as) = match &message.payload_file {
                Some((file, pointer)) if pointer.is_empty() => (file.clone(), None),
                _ => {
                    let shown = format!("{file_name}#{}/payload", message.location);
                    (format!("{file_name}.{}.{}.json", set.dir(), message.id), Some(shown))
                }
            };
            documents.entry(file.clone()).or_insert_with(|| message.payload.clone());
            placed.push((set, file, message_type, message, shown_as));
        }
    }
    load_referenced_files(document, &mut documents)
        .map_err(|reason| schema_error(SchemaError::Register { file: shown.clone(), reason }))?;
    let entries = placed
        .into_iter()
        .map(|(set, file, message_type, message, shown_as)| {
            let mut examples = message.examples.clone();
            if examples.is_empty() {
                // Checked against the compiled schema before use (ProfileSpec::example).
                examples.extend(instance(&documents, &file, &documents[&file]));
            }
            Entry { set, file, message_type, title: Some(message.name.clone()), examples, shown_as }
        })
        .collect();
    let place = format!("{file_name}#/channels/{}/messages", channel.id);
    let dispatch = [(MessageSet::Server, place.clone()), (MessageSet::Client, place)].into_iter().collect();
    Catalog::assemble(&shown, documents, entries, discriminator, dispatch).map_err(schema_error)
}

/// Adds every file that the documents refer to with a relative `$ref`, and the files those
/// refer to, read beside the AsyncAPI document.
fn load_referenced_files(document: &Document, documents: &mut BTreeMap<String, Value>) -> Result<(), String> {
    let mut pending: Vec<String> = Vec::new();
    for (file, value) in documents.iter() {
        file_references(file, value, &mut pending);
    }
    while let Some(file) = pending.pop() {
        if documents.contains_key(&file) {
            continue;
        }
        let text = document.read_relative(&file)?;
        let value: Value = serde_norway::from_str(&text).map_err(|e| format!("{file} is not JSON or YAML: {e}"))?;
        file_references(&file, &value, &mut pending);
        documents.insert(file, value);
    }
    Ok(())
}

/// The files `value` (the document `file`) refers to, as paths beside the AsyncAPI document.
fn file_references(file: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(reference)) if !reference.starts_with('#') => {
                        out.extend(crate::schema::resolve_reference(file, reference).map(|(target, _)| target));
                    }
                    _ => file_references(file, child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| file_references(file, item, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document written from the client's side, as many public ones are: each message has a
    /// channel of its own, all at one address; operations list no messages (their channel's
    /// are meant); replies name a channel, not messages; a reply's shapes vary in a `oneOf`
    /// whose branches share the name. Written for this test.
    const CHAT: &str = r##"
asyncapi: 3.0.0
info: {title: Chat client, version: 2.0.0}
servers:
  production: {host: chat.example.invalid, protocol: wss}
channels:
  join: {address: /chat, messages: {join: {$ref: '#/components/messages/join'}}}
  joined: {address: /chat, messages: {joined: {$ref: '#/components/messages/joined'}}}
  say: {address: /chat, messages: {say: {$ref: '#/components/messages/say'}}}
  said: {address: /chat, messages: {said: {$ref: '#/components/messages/said'}}}
  presence: {address: /chat, messages: {presence: {$ref: '#/components/messages/presence'}}}
operations:
  joinRoom: {action: send, channel: {$ref: '#/channels/join'}, reply: {channel: {$ref: '#/channels/joined'}}}
  speak: {action: send, channel: {$ref: '#/channels/say'}, reply: {channel: {$ref: '#/channels/said'}}}
  watchPresence: {action: receive, channel: {$ref: '#/channels/presence'}}
components:
  correlationIds:
    ref: {location: '$message.payload#/ref'}
  messages:
    join: {payload: {$ref: '#/components/schemas/join'}, correlationId: {$ref: '#/components/correlationIds/ref'}}
    joined:
      payload: {oneOf: [{$ref: '#/components/schemas/joinedOk'}, {$ref: '#/components/schemas/joinedRefused'}]}
      correlationId: {$ref: '#/components/correlationIds/ref'}
    say:
      payload: {type: object, required: [action, text], properties: {action: {const: say}, text: {type: string, minLength: 1}, ref: {type: string}}}
      correlationId: {$ref: '#/components/correlationIds/ref'}
    said:
      payload: {type: object, required: [action], properties: {action: {const: said}, ref: {type: string}}}
      correlationId: {$ref: '#/components/correlationIds/ref'}
    presence:
      payload: {type: object, required: [action, user], properties: {action: {const: presence}, user: {type: string}, online: {type: boolean}}}
  schemas:
    join: {type: object, required: [action, room], properties: {action: {const: join}, room: {type: string, minLength: 1}, ref: {type: string}}}
    joinedCommon: {type: object, required: [action], properties: {action: {const: joined}, ref: {type: string}}}
    joinedOk: {allOf: [{$ref: '#/components/schemas/joinedCommon'}, {required: [members], properties: {members: {type: array}}}]}
    joinedRefused: {allOf: [{$ref: '#/components/schemas/joinedCommon'}, {required: [reason], properties: {reason: {type: string}}}]}
"##;

    #[test]
    fn a_client_side_document_with_a_channel_per_message_is_one_connection() {
        let document = Document::parse(Path::new("chat.yaml"), CHAT).unwrap();
        let profile = ProfileSpec::from_document(&document, None, None).unwrap();
        assert_eq!(profile.name, "chat.yaml#/chat");
        assert_eq!(profile.address.as_deref(), Some("/chat"));
        // Inferred through the reply's oneOf of allOfs.
        assert_eq!(profile.discriminator().pointer(), "/action");
        let names = |set| profile.catalog.messages(set).map(|m| m.message_type.clone()).collect::<Vec<_>>();
        assert_eq!(names(MessageSet::Server), ["joined", "presence", "said"]);
        assert_eq!(names(MessageSet::Client), ["join", "say"]);
        let join = profile.reply("joinRoom").unwrap();
        assert_eq!(
            (join.requests.as_slice(), join.replies.as_slice()),
            (&["join".to_string()][..], &["joined".to_string()][..])
        );
        assert_eq!(join.reply_correlation.as_deref(), Some("/ref"));
        // Built from the schema; the id is a string because the schema wants one there.
        let (_, message, id) = profile.request(join, 7).unwrap();
        assert_eq!(message, serde_json::json!({"action": "join", "room": "x", "ref": "wsprobe-7"}));
        assert_eq!(id, Some(Value::from("wsprobe-7")));
        assert_eq!(profile.broadcasts, ["presence"]);
        // Any channel of the connection names the same connection.
        let by_member = ProfileSpec::from_document(&document, Some("said"), None).unwrap();
        assert_eq!(by_member.replies.len(), 2);
        // A refused join validates; one that names neither shape does not.
        let refused = serde_json::json!({"action": "joined", "ref": "wsprobe-7", "reason": "full"});
        assert!(profile.catalog.validate(MessageSet::Server, &refused).is_valid());
        let neither = serde_json::json!({"action": "joined"});
        assert!(!profile.catalog.validate(MessageSet::Server, &neither).is_valid());
    }
}
