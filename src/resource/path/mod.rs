//! The grammar of Graph resource paths, and the kind of resource a path names.
//!
//! A path is a sequence of segments separated by `/`: `name`, `name('key')`, `name(key='value')`
//! (one or more named keys), or a bare key after a collection (`users/{id}/messages/{id}`). Names
//! are compared case-insensitively and may be percent-encoded (`Users`, `users`, `%75sers`); keys
//! are never interpreted, and a `/` or `?` inside a quoted or parenthesised key does not split it.
//! A leading `/`, empty segments and a query (`?$filter=…`, `?$select=…`) are ignored.
//!
//! Each name must be a child the grammar allows under the one before it (`chats/{id}/messages`,
//! `users/{id}/mailFolders/{id}/messages`, `communications/onlineMeetings/getAllTranscripts`...);
//! the kind is then decided by the last name and its parent: `messages` under a chat or channel is a
//! Teams `chatMessage`, under a user or mail folder an Outlook `message`. A path the grammar does
//! not know is [`PathKind::Other`], never a guess.
//!
//! Parsing allocates nothing: it walks the text once and keeps the last three segments.

/// The kind of resource a Graph resource path (of a subscription or of a notification) names.
///
/// ```
/// use msgraph_notify::resource::PathKind;
/// assert_eq!(PathKind::of("chats('19:x')/messages('1')"), PathKind::ChatMessage);
/// assert_eq!(PathKind::of("Users/u/Messages/m"), PathKind::Message);
/// assert_eq!(PathKind::of("communications/onlineMeetings('m')/transcripts('t')"), PathKind::CallTranscript);
/// assert_eq!(PathKind::of("/communications/presences?$filter=id in ('a','b')"), PathKind::Presence);
/// assert_eq!(PathKind::of("users/u/drive/root"), PathKind::Other);
/// assert_eq!(PathKind::of("chats('19:x')/messages('1')").as_str(), "chatMessage");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathKind {
    /// `communications/presences[/{id}]`, `users/{id}/presence`.
    Presence,
    /// Teams chat and channel messages and replies, `getAllMessages`.
    ChatMessage,
    /// `communications/onlineMeetings(...)/meetingCallEvents` and the older
    /// `communications/onlineMeetings?$filter=joinWebUrl eq '…'`.
    CallEvent,
    /// `…/onlineMeetings/{id}/recordings`, `…/getAllRecordings`.
    CallRecording,
    /// `…/onlineMeetings/{id}/transcripts`, `…/getAllTranscripts`.
    CallTranscript,
    /// `chats[/{id}]`, `users/{id}/chats`, `appCatalogs/teamsApps/{id}/installedToChats`.
    Chat,
    /// `teams[/{id}]`.
    Team,
    /// `teams/getAllChannels`, `teams/{id}/channels[/{id}]`.
    Channel,
    /// `teams/{id}/members`, `chats/{id}/members`, `chats/getAllMembers`...
    ConversationMember,
    /// `copilot/[users/{id}/]interactionHistory/getAllEnterpriseInteractions`, `…/interactions/{id}`.
    AiInteraction,
    /// Outlook `users/{id}/messages`, `users/{id}/mailFolders/{id}/messages`...
    Message,
    /// Outlook `users/{id}/events`, `users/{id}/calendar/events`...
    Event,
    /// Outlook `users/{id}/contacts`, `users/{id}/contactFolders/{id}/contacts`.
    Contact,
    /// Anything else.
    Other,
}

impl PathKind {
    /// The kind of `path` (see the module docs for the grammar).
    pub fn of(path: &str) -> Self {
        classify(path).unwrap_or(PathKind::Other)
    }

    /// The Graph entity name in camelCase: `presence`, `chatMessage`, ..., `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Presence => "presence",
            PathKind::ChatMessage => "chatMessage",
            PathKind::CallEvent => "callEvent",
            PathKind::CallRecording => "callRecording",
            PathKind::CallTranscript => "callTranscript",
            PathKind::Chat => "chat",
            PathKind::Team => "team",
            PathKind::Channel => "channel",
            PathKind::ConversationMember => "conversationMember",
            PathKind::AiInteraction => "aiInteraction",
            PathKind::Message => "message",
            PathKind::Event => "event",
            PathKind::Contact => "contact",
            PathKind::Other => "other",
        }
    }
}

impl std::fmt::Display for PathKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names the grammar knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    AdhocCalls,
    AppCatalogs,
    Calendar,
    Calendars,
    Channels,
    Chats,
    ChildFolders,
    Communications,
    ContactFolders,
    Contacts,
    Copilot,
    Events,
    GetAllChannels,
    GetAllEnterpriseInteractions,
    GetAllMembers,
    GetAllMessages,
    GetAllRecordings,
    GetAllRetainedMessages,
    GetAllTranscripts,
    Groups,
    InstalledToChats,
    InstalledToOnlineMeetings,
    InteractionHistory,
    Interactions,
    MailFolders,
    Me,
    MeetingCallEvents,
    Members,
    Messages,
    OnlineMeetings,
    Presence,
    Presences,
    PrimaryChannel,
    Recordings,
    Replies,
    Teams,
    TeamsApps,
    Transcripts,
    Users,
}

/// Every name with its spelling, for the case-insensitive lookup.
const NAMES: &[(&str, Name)] = &[
    ("adhocCalls", Name::AdhocCalls),
    ("appCatalogs", Name::AppCatalogs),
    ("calendar", Name::Calendar),
    ("calendars", Name::Calendars),
    ("channels", Name::Channels),
    ("chats", Name::Chats),
    ("childFolders", Name::ChildFolders),
    ("communications", Name::Communications),
    ("contactFolders", Name::ContactFolders),
    ("contacts", Name::Contacts),
    ("copilot", Name::Copilot),
    ("events", Name::Events),
    ("getAllChannels", Name::GetAllChannels),
    (
        "getAllEnterpriseInteractions",
        Name::GetAllEnterpriseInteractions,
    ),
    ("getAllMembers", Name::GetAllMembers),
    ("getAllMessages", Name::GetAllMessages),
    ("getAllRecordings", Name::GetAllRecordings),
    ("getAllRetainedMessages", Name::GetAllRetainedMessages),
    ("getAllTranscripts", Name::GetAllTranscripts),
    ("groups", Name::Groups),
    ("installedToChats", Name::InstalledToChats),
    ("installedToOnlineMeetings", Name::InstalledToOnlineMeetings),
    ("interactionHistory", Name::InteractionHistory),
    ("interactions", Name::Interactions),
    ("mailFolders", Name::MailFolders),
    ("me", Name::Me),
    ("meetingCallEvents", Name::MeetingCallEvents),
    ("members", Name::Members),
    ("messages", Name::Messages),
    ("onlineMeetings", Name::OnlineMeetings),
    ("presence", Name::Presence),
    ("presences", Name::Presences),
    ("primaryChannel", Name::PrimaryChannel),
    ("recordings", Name::Recordings),
    ("replies", Name::Replies),
    ("teams", Name::Teams),
    ("teamsApps", Name::TeamsApps),
    ("transcripts", Name::Transcripts),
    ("users", Name::Users),
];

impl Name {
    /// Whether a bare segment after this name, when not one of its children, is its key.
    fn is_collection(self) -> bool {
        use Name::*;
        matches!(
            self,
            AdhocCalls
                | Calendars
                | Channels
                | Chats
                | ChildFolders
                | ContactFolders
                | Contacts
                | Events
                | Groups
                | InstalledToChats
                | InstalledToOnlineMeetings
                | Interactions
                | MailFolders
                | Members
                | Messages
                | OnlineMeetings
                | Presences
                | Recordings
                | Replies
                | Teams
                | TeamsApps
                | Transcripts
                | Users
        )
    }
}

/// One parsed segment: a name, and whether it has a key (inline or as the next segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    name: Name,
    keyed: bool,
}

/// Whether `child` may follow `parent` (None: the root); `root` is the first name of the path.
fn child_ok(root: Option<Name>, parent: Option<Step>, child: Name) -> bool {
    use Name::*;
    let Some(parent) = parent else {
        return matches!(
            child,
            Users | Me | Communications | Chats | Teams | Copilot | AppCatalogs | Groups
        );
    };
    let under_copilot = root == Some(Copilot);
    match (parent.name, parent.keyed) {
        (Users, true) if under_copilot => child == InteractionHistory,
        (Users, true) | (Me, _) => matches!(
            child,
            Presence
                | Chats
                | OnlineMeetings
                | AdhocCalls
                | Messages
                | MailFolders
                | Events
                | Calendar
                | Calendars
                | Contacts
                | ContactFolders
        ),
        (Communications, _) => matches!(child, Presences | OnlineMeetings | AdhocCalls),
        (OnlineMeetings | AdhocCalls, false) => {
            matches!(child, GetAllRecordings | GetAllTranscripts)
        }
        (OnlineMeetings, true) => matches!(child, Recordings | Transcripts | MeetingCallEvents),
        (AdhocCalls, true) => matches!(child, Recordings | Transcripts),
        (Chats, false) => matches!(
            child,
            GetAllMessages | GetAllMembers | GetAllRetainedMessages
        ),
        (Chats, true) => matches!(child, Messages | Members),
        (Teams, false) => matches!(child, GetAllMessages | GetAllChannels),
        (Teams, true) => matches!(child, Channels | Members | PrimaryChannel),
        (Channels, false) => matches!(child, GetAllMessages | GetAllMembers),
        (Channels, true) | (PrimaryChannel, _) => matches!(child, Messages | Members),
        (Messages, true) => child == Replies,
        (Copilot, _) => matches!(child, InteractionHistory | Users),
        (InteractionHistory, _) => {
            under_copilot && matches!(child, GetAllEnterpriseInteractions | Interactions)
        }
        (AppCatalogs, _) => child == TeamsApps,
        (TeamsApps, true) => matches!(child, InstalledToChats | InstalledToOnlineMeetings),
        (InstalledToChats, false) => matches!(child, GetAllMessages | GetAllMembers),
        (InstalledToOnlineMeetings, false) => {
            matches!(child, GetAllRecordings | GetAllTranscripts)
        }
        (MailFolders | ChildFolders, true) => matches!(child, Messages | ChildFolders | Contacts),
        (ContactFolders, true) => matches!(child, Contacts | ChildFolders),
        (Calendar, _) | (Calendars, true) => child == Events,
        (Groups, true) => matches!(child, Events | Calendar),
        _ => false,
    }
}

/// The kind named by the last step, given its parent and grandparent.
fn kind_of(grand: Option<Step>, parent: Option<Step>, last: Step) -> Option<PathKind> {
    use Name::*;
    let p = parent.map(|s| s.name);
    let kind = match last.name {
        Presences | Presence => PathKind::Presence,
        MeetingCallEvents => PathKind::CallEvent,
        // The older meeting call events subscription: `communications/onlineMeetings?$filter=…`
        // or `communications/onlineMeetings(joinWebUrl='…')`.
        OnlineMeetings if p == Some(Communications) => PathKind::CallEvent,
        Recordings | GetAllRecordings => PathKind::CallRecording,
        Transcripts | GetAllTranscripts => PathKind::CallTranscript,
        GetAllMessages | GetAllRetainedMessages | Replies => PathKind::ChatMessage,
        Messages => match p? {
            Chats | Channels | PrimaryChannel => PathKind::ChatMessage,
            Users | Me | MailFolders | ChildFolders => PathKind::Message,
            _ => return None,
        },
        Chats | InstalledToChats => PathKind::Chat,
        Teams => PathKind::Team,
        Channels | GetAllChannels | PrimaryChannel => PathKind::Channel,
        Members | GetAllMembers => PathKind::ConversationMember,
        GetAllEnterpriseInteractions | Interactions => PathKind::AiInteraction,
        Events => PathKind::Event,
        Contacts => PathKind::Contact,
        _ => return None,
    };
    // `replies` only exist on channel messages; the grammar lets `messages/{id}/replies` follow
    // any `messages`, so check where those messages are.
    if last.name == Replies
        && !matches!(
            grand.map(|s| s.name),
            Some(Chats | Channels | PrimaryChannel)
        )
    {
        return None;
    }
    Some(kind)
}

/// Walks `path`; `None` when it does not follow the grammar.
fn classify(path: &str) -> Option<PathKind> {
    let segments = Segments::new(path);
    let mut root: Option<Name> = None;
    let (mut grand, mut parent, mut last): (Option<Step>, Option<Step>, Option<Step>) =
        (None, None, None);
    for segment in segments {
        let segment = segment.ok()?;
        if segment.text.is_empty() {
            continue;
        }
        let name = lookup(segment.name);
        match (name, last) {
            // A known child of the current step.
            (Some(name), _) if child_ok(root, last, name) => {
                root.get_or_insert(name);
                grand = parent;
                parent = last;
                last = Some(Step {
                    name,
                    keyed: segment.key,
                });
            }
            // Otherwise, a bare key of an unkeyed collection.
            (_, Some(step)) if !segment.key && !step.keyed && step.name.is_collection() => {
                last = Some(Step {
                    keyed: true,
                    ..step
                });
            }
            _ => return None,
        }
    }
    kind_of(grand, parent, last?)
}

mod lexer;

use lexer::{Segments, lookup};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_respect_quotes_and_parentheses() {
        let all: Vec<_> = Segments::new("a('x/y?z')/b(k='1',j='it''s')/c?$filter=a/b")
            .map(|s| s.map(|s| (s.text, s.name, s.key)))
            .collect();
        assert_eq!(
            all,
            vec![
                Ok(("a('x/y?z')", "a", true)),
                Ok(("b(k='1',j='it''s')", "b", true)),
                Ok(("c", "c", false)),
            ]
        );
        for bad in ["a('x", "a(x", "a)x", "a('x')y", "a(x)(y)"] {
            assert!(
                Segments::new(bad).any(|s| s.is_err()),
                "{bad} should not parse"
            );
        }
    }

    #[test]
    fn names_are_sorted_for_the_lookup() {
        assert!(
            NAMES
                .windows(2)
                .all(|w| w[0].0.to_ascii_lowercase() < w[1].0.to_ascii_lowercase())
        );
        for &(word, name) in NAMES {
            assert_eq!(lookup(word), Some(name));
            assert_eq!(lookup(&word.to_ascii_uppercase()), Some(name));
        }
    }

    #[test]
    fn names_are_case_insensitive_and_percent_decoded() {
        assert_eq!(lookup("Users"), Some(Name::Users));
        assert_eq!(lookup("%75sers"), Some(Name::Users));
        assert_eq!(lookup("%55SERS"), Some(Name::Users));
        assert_eq!(lookup("user"), None);
        assert_eq!(lookup("%7"), None);
        assert_eq!(lookup("%zzsers"), None);
    }
}
