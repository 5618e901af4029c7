//! AsyncAPI 3.x documents as wsprobe reads them: for one channel, the messages the server
//! sends and those it receives, each with its payload schema, the discriminator that tells
//! them apart, and the request/reply operations with their correlation ids.
//!
//! Payloads may be inline, point into the document (`#/components/...`) or into local files
//! beside it (`./core/Pong.json`), as the shipped `schemas/asyncapi.yaml` does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AsyncApiError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} is not a YAML or JSON document: {reason}")]
    Parse { path: String, reason: String },
    #[error("{path}: asyncapi is {found:?}; wsprobe reads AsyncAPI 3.x documents")]
    Version { path: String, found: String },
    #[error("{path}: cannot follow $ref {reference:?}: {reason}")]
    Ref { path: String, reference: String, reason: String },
    #[error("{path}: no channel {wanted:?}; the document has {known}")]
    NoChannel { path: String, wanted: String, known: String },
    #[error("{path}: the document has several channels ({known}); pick one with --channel")]
    AmbiguousChannel { path: String, known: String },
    #[error("{path}: no server {wanted:?}; the document has {known}")]
    NoServer { path: String, wanted: String, known: String },
    #[error("{path}: server {server:?} has {reason}")]
    BadServer { path: String, server: String, reason: String },
}

/// One message of a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageSpec {
    /// The message's key in the channel.
    pub id: String,
    /// Its `name`, else its id.
    pub name: String,
    /// The payload schema, with the document's own `$ref`s followed; references into files are
    /// followed too (the file's content, whose own relative `$ref`s are left for the validator).
    pub payload: Value,
    /// The file the payload came from, relative to the document's folder (`core/Pong.json`),
    /// and the JSON Pointer into it (empty for the whole file).
    pub payload_file: Option<(String, String)>,
    /// JSON Pointer into the payload of the correlation id, when one is declared.
    pub correlation: Option<String>,
    pub examples: Vec<Value>,
    /// Where the message is defined in the document, as a JSON Pointer (`/components/messages/ping`).
    pub location: String,
}

/// A `receive` operation with a `reply`: a request the server must answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplySpec {
    pub operation: String,
    pub requests: Vec<String>,
    pub replies: Vec<String>,
}

/// What a channel says about both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSpec {
    pub id: String,
    pub address: Option<String>,
    pub server_sends: Vec<MessageSpec>,
    pub server_receives: Vec<MessageSpec>,
    pub replies: Vec<ReplySpec>,
}

/// A parsed document and where it lives (for its relative file references).
pub struct Document {
    path: PathBuf,
    root: Value,
    /// The files beside the document, when they are not on disk (the embedded copy of the
    /// shipped document), by path relative to its folder.
    files: Option<BTreeMap<String, String>>,
}

impl Document {
    pub fn load(path: &Path) -> Result<Document, AsyncApiError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| AsyncApiError::Read { path: shown.clone(), reason: e.to_string() })?;
        Document::parse(path, &text)
    }

    /// `path` locates the files the document refers to.
    pub fn parse(path: &Path, text: &str) -> Result<Document, AsyncApiError> {
        let shown = path.display().to_string();
        let root: Value = serde_norway::from_str(text)
            .map_err(|e| AsyncApiError::Parse { path: shown.clone(), reason: e.to_string() })?;
        let version = root.get("asyncapi").and_then(Value::as_str).unwrap_or_default();
        if !version.starts_with("3.") {
            return Err(AsyncApiError::Version { path: shown, found: version.to_string() });
        }
        Ok(Document { path: path.to_path_buf(), root, files: None })
    }

    /// A document whose referenced files come from `files` (path relative to the document's
    /// folder → text) instead of the disk.
    pub fn with_files(mut self, files: BTreeMap<String, String>) -> Document {
        self.files = Some(files);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The document's file name (`feed.yaml`), as profile names and schema paths show it.
    pub fn file_name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
    }

    pub fn root(&self) -> &Value {
        &self.root
    }

    /// The text of a file the document refers to, by path relative to the document's folder.
    pub fn read_relative(&self, relative: &str) -> Result<String, String> {
        match &self.files {
            Some(files) => {
                files.get(relative).cloned().ok_or_else(|| format!("no file {relative} beside the document"))
            }
            None => {
                let full = self.path.parent().unwrap_or(Path::new(".")).join(relative);
                std::fs::read_to_string(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))
            }
        }
    }

    /// Every server of the document, by id, with its URL for `channel` (`protocol://host` +
    /// `pathname` + the channel's address), or why it has none.
    pub fn server_urls(&self, channel: &ChannelSpec) -> BTreeMap<String, Result<String, AsyncApiError>> {
        let servers = self.root.get("servers").and_then(Value::as_object).cloned().unwrap_or_default();
        servers.iter().map(|(id, server)| (id.clone(), self.server_url(id, server, channel))).collect()
    }

    fn server_url(&self, id: &str, server: &Value, channel: &ChannelSpec) -> Result<String, AsyncApiError> {
        let server = self.follow(server)?;
        let bad = |reason: &str| AsyncApiError::BadServer {
            path: self.shown(),
            server: id.to_string(),
            reason: reason.to_string(),
        };
        let protocol = server.get("protocol").and_then(Value::as_str).unwrap_or("ws");
        if !matches!(protocol, "ws" | "wss") {
            return Err(bad(&format!("protocol {protocol:?}; wsprobe speaks ws and wss")));
        }
        let host = server.get("host").and_then(Value::as_str).ok_or_else(|| bad("no host"))?;
        let pathname = server.get("pathname").and_then(Value::as_str).unwrap_or("");
        let address = channel.address.as_deref().unwrap_or("");
        let url = format!("{protocol}://{host}{}{address}", pathname.trim_end_matches('/'));
        if url.contains('{') {
            return Err(bad(&format!("a variable in {url:?}; pass --url with the values filled in")));
        }
        Ok(url)
    }

    pub fn channel_ids(&self) -> Vec<String> {
        self.root.get("channels").and_then(Value::as_object).map(|c| c.keys().cloned().collect()).unwrap_or_default()
    }

    /// The connection a client opens to channel `wanted`, or to the only one: that channel and
    /// every other at the same address on the same servers (a WebSocket connection carries them
    /// all, and documents often give each message a channel of its own).
    ///
    /// Operations are read from the side the document describes: replies to `receive`
    /// operations mean a server (as `schemas/asyncapi.yaml`), replies to `send` operations a
    /// client (as many public documents). An operation or a reply that lists no messages
    /// carries every message of its channel.
    pub fn channel(&self, wanted: Option<&str>) -> Result<ChannelSpec, AsyncApiError> {
        let ids = self.channel_ids();
        let groups = self.connections(&ids)?;
        let members: Vec<String> = match wanted {
            Some(id) => match groups.iter().find(|g| g.iter().any(|member| member == id)) {
                Some(group) => group.clone(),
                None => {
                    return Err(AsyncApiError::NoChannel {
                        path: self.shown(),
                        wanted: id.into(),
                        known: ids.join(", "),
                    })
                }
            },
            None if groups.len() == 1 => groups[0].clone(),
            None => return Err(AsyncApiError::AmbiguousChannel { path: self.shown(), known: ids.join(", ") }),
        };
        let first = &self.root["channels"][&members[0]];
        let address = first.get("address").and_then(Value::as_str).map(String::from);
        let id = match (wanted, members.len()) {
            (Some(id), _) => id.to_string(),
            (None, 1) => members[0].clone(),
            (None, _) => address.clone().unwrap_or_else(|| members[0].clone()),
        };
        let mut spec =
            ChannelSpec { id, address, server_sends: Vec::new(), server_receives: Vec::new(), replies: Vec::new() };
        let operations = self.root.get("operations").and_then(Value::as_object).cloned().unwrap_or_default();
        let mut ours = Vec::new();
        for (operation_id, operation) in operations {
            let operation = self.follow(&operation)?;
            let (_, channel_at) = self.follow_to(&operation["channel"])?;
            let Some(channel_id) = channel_at.strip_prefix("/channels/") else { continue };
            if members.iter().any(|member| member == channel_id) {
                ours.push((operation_id, operation, channel_id.to_string()));
            }
        }
        let has_reply =
            |action: &str| ours.iter().any(|(_, op, _)| op["action"] == action && op.get("reply").is_some());
        // The action by which the described application takes requests in: its peer's requests.
        let describes_client = has_reply("send") && !has_reply("receive");
        let (server_sends_action, server_receives_action) =
            if describes_client { ("receive", "send") } else { ("send", "receive") };
        for (operation_id, operation, channel_id) in ours {
            let mut messages = self.operation_messages(&operation["messages"])?;
            if messages.is_empty() {
                // The channel's messages; those the operation is named after first (`subscribe`
                // for `subscribe`, `ping` for `pingPong`), as the request a case sends.
                messages = self.channel_messages(&channel_id)?;
                let id = operation_id.to_lowercase();
                messages
                    .sort_by_key(|m| std::cmp::Reverse(id.starts_with(&m.name.to_lowercase()) as usize * m.name.len()));
            }
            let action = operation.get("action").and_then(Value::as_str).unwrap_or_default();
            let reply = operation.get("reply").map(|reply| self.follow(reply)).transpose()?;
            let replies = match &reply {
                Some(reply) => {
                    let mut replies = self.operation_messages(&reply["messages"])?;
                    if replies.is_empty() {
                        let (_, reply_at) = match reply.get("channel") {
                            Some(channel) => self.follow_to(channel)?,
                            None => (Value::Null, format!("/channels/{channel_id}")),
                        };
                        let reply_channel = reply_at.strip_prefix("/channels/").unwrap_or(&channel_id).to_string();
                        replies = self.channel_messages(&reply_channel)?;
                    }
                    replies
                }
                None => Vec::new(),
            };
            if action == server_sends_action {
                // The server's own messages; a reply to one would come from the client.
                push_new(&mut spec.server_sends, messages);
                push_new(&mut spec.server_receives, replies);
            } else if action == server_receives_action {
                let names: Vec<String> = messages.iter().map(|m| m.name.clone()).collect();
                push_new(&mut spec.server_receives, messages);
                if reply.is_some() {
                    let reply_names = replies.iter().map(|m| m.name.clone()).collect();
                    push_new(&mut spec.server_sends, replies);
                    spec.replies.push(ReplySpec { operation: operation_id, requests: names, replies: reply_names });
                }
            }
        }
        Ok(spec)
    }

    /// Channel ids grouped by connection: the same address on the same servers.
    fn connections(&self, ids: &[String]) -> Result<Vec<Vec<String>>, AsyncApiError> {
        let mut groups: Vec<((Value, Value), Vec<String>)> = Vec::new();
        for id in ids {
            let channel = self.follow(&self.root["channels"][id])?;
            let key = (
                channel.get("address").cloned().unwrap_or(Value::Null),
                channel.get("servers").cloned().unwrap_or(Value::Null),
            );
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(id.clone()),
                None => groups.push((key, vec![id.clone()])),
            }
        }
        Ok(groups.into_iter().map(|(_, members)| members).collect())
    }

    /// Every message of channel `id`, under its key there.
    fn channel_messages(&self, id: &str) -> Result<Vec<MessageSpec>, AsyncApiError> {
        let channel = self.follow(&self.root["channels"][id])?;
        let Some(messages) = channel.get("messages").and_then(Value::as_object) else { return Ok(Vec::new()) };
        messages
            .iter()
            .map(|(key, reference)| {
                let mut message = self.message(reference)?;
                if message.id.is_empty() {
                    message.id = key.clone();
                }
                if message.name.is_empty() {
                    message.name = key.clone();
                }
                Ok(message)
            })
            .collect()
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    fn operation_messages(&self, list: &Value) -> Result<Vec<MessageSpec>, AsyncApiError> {
        let Some(list) = list.as_array() else { return Ok(Vec::new()) };
        list.iter().map(|reference| self.message(reference)).collect()
    }

    fn message(&self, reference: &Value) -> Result<MessageSpec, AsyncApiError> {
        let id = reference
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        let (message, location) = self.follow_to(reference)?;
        let name = message.get("name").and_then(Value::as_str).map(String::from).unwrap_or_else(|| id.clone());
        let (payload, payload_file) = match message.get("payload").and_then(|p| p.get("$ref")).and_then(Value::as_str) {
            Some(file) if !file.starts_with('#') => {
                // Resolved as from a file at the folder's root, which the document is.
                let (relative, pointer) = crate::schema::resolve_reference("document", file).ok_or_else(|| {
                    self.bad_ref(file, "only files in the document's folder or below it are followed".into())
                })?;
                let text = self.read_relative(&relative).map_err(|reason| self.bad_ref(file, reason))?;
                let document: Value = serde_norway::from_str(&text).map_err(|e| self.bad_ref(file, e.to_string()))?;
                let payload =
                    document.pointer(&pointer).cloned().ok_or_else(|| self.bad_ref(file, "no such pointer".into()))?;
                (payload, Some((relative, pointer)))
            }
            _ => (self.inline(message.get("payload").cloned().unwrap_or(Value::Null), 0)?, None),
        };
        let correlation = match message.get("correlationId") {
            Some(correlation) => {
                let correlation = self.follow(correlation)?;
                correlation
                    .get("location")
                    .and_then(Value::as_str)
                    .and_then(|l| l.strip_prefix("$message.payload#"))
                    .map(String::from)
            }
            None => None,
        };
        let mut examples: Vec<Value> = message
            .get("examples")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(|e| e.get("payload").cloned()).collect())
            .unwrap_or_default();
        if examples.is_empty() {
            examples = payload.get("examples").and_then(Value::as_array).cloned().unwrap_or_default();
        }
        Ok(MessageSpec { id, name, payload, payload_file, correlation, examples, location })
    }

    /// Follows a chain of in-document `$ref`s to the object they name.
    fn follow(&self, value: &Value) -> Result<Value, AsyncApiError> {
        self.follow_to(value).map(|(value, _)| value)
    }

    /// [`Document::follow`], with the JSON Pointer of where the chain ended (empty when `value`
    /// is no reference).
    fn follow_to(&self, value: &Value) -> Result<(Value, String), AsyncApiError> {
        let mut current = value.clone();
        let mut at = String::new();
        for _ in 0..32 {
            let Some(reference) = current.get("$ref").and_then(Value::as_str).map(String::from) else {
                return Ok((current, at));
            };
            let pointer = reference.strip_prefix('#').ok_or_else(|| {
                self.bad_ref(&reference, "only references inside the document are followed here".into())
            })?;
            current = self
                .root
                .pointer(pointer)
                .cloned()
                .ok_or_else(|| self.bad_ref(&reference, "no such pointer".into()))?;
            at = pointer.to_string();
        }
        Err(self.bad_ref("", "more than 32 references in a chain".into()))
    }

    /// A schema with every in-document `$ref` replaced by what it names (cycles stop at depth).
    fn inline(&self, schema: Value, depth: usize) -> Result<Value, AsyncApiError> {
        if depth > 32 {
            return Ok(schema);
        }
        Ok(match schema {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str).filter(|r| r.starts_with('#')) {
                    let target = self.follow(&Value::Object(map.clone()))?;
                    return self.inline(target, depth + 1).map_err(|_| self.bad_ref(reference, "cannot inline".into()));
                }
                let mut out = serde_json::Map::new();
                for (key, value) in map {
                    out.insert(key, self.inline(value, depth + 1)?);
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.inline(v, depth + 1)).collect::<Result<_, _>>()?)
            }
            other => other,
        })
    }

    fn bad_ref(&self, reference: &str, reason: String) -> AsyncApiError {
        AsyncApiError::Ref { path: self.shown(), reference: reference.to_string(), reason }
    }
}

fn push_new(into: &mut Vec<MessageSpec>, messages: Vec<MessageSpec>) {
    for message in messages {
        if !into.iter().any(|m| m.name == message.name) {
            into.push(message);
        }
    }
}

/// The member every message of a side fixes with its own `const` (or one-value `enum`), as a
/// JSON Pointer: `/type` for Bot Core, `/event` elsewhere. The `const` may sit in an `allOf`
/// member, or alike in every branch of a `oneOf`. `None` when no member tells every message
/// apart.
pub fn discriminator(messages: &[MessageSpec]) -> Option<String> {
    let all: Vec<BTreeMap<String, String>> =
        messages.iter().map(|m| crate::schema::fixed_members(&m.payload)).collect();
    let first = all.first()?;
    first
        .keys()
        .find(|name| {
            let values: Vec<&String> = all.iter().filter_map(|c| c.get(*name)).collect();
            let distinct: std::collections::BTreeSet<&String> = values.iter().copied().collect();
            values.len() == all.len() && distinct.len() == all.len()
        })
        .map(|name| format!("/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Document {
        Document::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/asyncapi.yaml")).unwrap()
    }

    #[test]
    fn the_shipped_document_gives_each_side_of_the_core_channel_and_its_request_reply() {
        let document = shipped();
        assert_eq!(document.channel_ids(), ["ai", "core"]);
        let core = document.channel(Some("core")).unwrap();
        assert_eq!(core.address.as_deref(), Some("/ws"));
        let mut sends: Vec<&str> = core.server_sends.iter().map(|m| m.name.as_str()).collect();
        sends.sort();
        assert_eq!(
            sends,
            [
                "AISignalReceived",
                "BotStatusUpdate",
                "ChartUpdate",
                "Connected",
                "Error",
                "MarketData",
                "Pong",
                "PositionUpdate",
                "TradeExecuted"
            ]
        );
        let receives: Vec<&str> = core.server_receives.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(receives, ["Ping", "Authenticate"]);
        assert_eq!(core.replies.len(), 1);
        assert_eq!(core.replies[0].replies, ["Pong"]);
        assert_eq!(discriminator(&core.server_sends).as_deref(), Some("/type"));
        assert_eq!(discriminator(&core.server_receives).as_deref(), Some("/type"));
        let connected = core.server_sends.iter().find(|m| m.name == "Connected").unwrap();
        assert_eq!(connected.payload_file, Some(("core/Connected.json".into(), String::new())));
        assert!(matches!(document.channel(None), Err(AsyncApiError::AmbiguousChannel { .. })));
        assert!(matches!(document.channel(Some("nope")), Err(AsyncApiError::NoChannel { .. })));
    }

    /// A document in the style of an exchange's public feed: `event` tells messages apart, and
    /// requests carry a `reqid` that their reply echoes. Written for this test.
    const FEED: &str = r##"
asyncapi: 3.0.0
info: {title: Feed, version: 1.0.0}
channels:
  public:
    address: /
    messages:
      ping: {$ref: '#/components/messages/ping'}
      pong: {$ref: '#/components/messages/pong'}
      heartbeat: {$ref: '#/components/messages/heartbeat'}
operations:
  receivePing:
    action: receive
    channel: {$ref: '#/channels/public'}
    messages: [{$ref: '#/channels/public/messages/ping'}]
    reply:
      channel: {$ref: '#/channels/public'}
      messages: [{$ref: '#/channels/public/messages/pong'}]
  sendHeartbeat:
    action: send
    channel: {$ref: '#/channels/public'}
    messages: [{$ref: '#/channels/public/messages/heartbeat'}]
components:
  messages:
    ping:
      payload:
        type: object
        properties:
          event: {const: ping}
          reqid: {$ref: '#/components/schemas/reqid'}
      correlationId: {$ref: '#/components/correlationIds/reqid'}
    pong:
      payload:
        type: object
        properties:
          event: {const: pong}
          reqid: {$ref: '#/components/schemas/reqid'}
      correlationId: {$ref: '#/components/correlationIds/reqid'}
      examples: [{payload: {event: pong, reqid: 42}}]
    heartbeat:
      payload:
        type: object
        properties:
          event: {const: heartbeat}
  schemas:
    reqid: {type: integer, minimum: 0}
  correlationIds:
    reqid: {location: '$message.payload#/reqid'}
"##;

    #[test]
    fn a_third_party_style_document_gives_its_discriminator_replies_and_correlation_ids() {
        let document = Document::parse(Path::new("feed.yaml"), FEED).unwrap();
        let public = document.channel(None).unwrap();
        assert_eq!(public.server_receives.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["ping"]);
        // The reply is among what the server sends, though no send operation lists it.
        assert_eq!(public.server_sends.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["pong", "heartbeat"]);
        assert_eq!(
            public.replies,
            [ReplySpec {
                operation: "receivePing".into(),
                requests: vec!["ping".into()],
                replies: vec!["pong".into()]
            }]
        );
        let ping = &public.server_receives[0];
        assert_eq!(ping.correlation.as_deref(), Some("/reqid"));
        // The in-document $ref is inlined: the payload stands alone.
        assert_eq!(ping.payload["properties"]["reqid"], serde_json::json!({"type": "integer", "minimum": 0}));
        let pong = document.message(&serde_json::json!({"$ref": "#/channels/public/messages/pong"})).unwrap();
        assert_eq!(pong.examples, [serde_json::json!({"event": "pong", "reqid": 42})]);
        let both = [ping.clone(), pong, public.server_sends[1].clone()];
        assert_eq!(discriminator(&both).as_deref(), Some("/event"));

        assert!(matches!(
            Document::parse(Path::new("old.yaml"), "asyncapi: 2.6.0\n"),
            Err(AsyncApiError::Version { .. })
        ));
        assert!(matches!(Document::parse(Path::new("bad.yaml"), "asyncapi: [\n"), Err(AsyncApiError::Parse { .. })));
    }

    /// A client-side document whose operations list no messages: each carries its channel's,
    /// the one it is named after first. Written for this test.
    const UNLISTED: &str = r##"
asyncapi: 3.0.0
info: {title: Unlisted, version: 1.0.0}
channels:
  feed:
    address: /
    messages:
      heartbeat: {payload: {type: object, properties: {op: {const: heartbeat}}}}
      ping: {payload: {type: object, properties: {op: {const: ping}}}}
      pong: {payload: {type: object, properties: {op: {const: pong}}}}
operations:
  pingPong:
    action: send
    channel: {$ref: '#/channels/feed'}
    reply: {messages: [{$ref: '#/channels/feed/messages/pong'}]}
  listen:
    action: receive
    channel: {$ref: '#/channels/feed'}
"##;

    #[test]
    fn operations_without_messages_carry_their_channels_and_the_named_one_comes_first() {
        let document = Document::parse(Path::new("unlisted.yaml"), UNLISTED).unwrap();
        let feed = document.channel(None).unwrap();
        assert_eq!(feed.replies.len(), 1);
        assert_eq!(feed.replies[0].requests[0], "ping");
        assert_eq!(feed.replies[0].replies, ["pong"]);
        // The client receives everything on the channel, so the server may send all of it.
        assert_eq!(feed.server_sends.len(), 3);
        assert_eq!(discriminator(&feed.server_sends).as_deref(), Some("/op"));
    }
}
