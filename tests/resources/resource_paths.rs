//! Resource kinds from the grammar of resource paths and from `@odata.type`: every documented
//! subscription and notification path form, and the doc sample of each kind (made by the test
//! kit), typed from its path alone, from its type alone, and end to end through decryption.

use msgraph_notify::Decryptor;
use msgraph_notify::resource::{
    AiInteractionType, ChannelMembershipType, ChatType, Importance, PathKind, Resource,
};
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, doc_samples};
use serde_json::{Value, json};

/// (path, kind): SPEC.md §5 and §8, Graph's list of resources with resource data, the paths the
/// docs' notifications carry, and the spellings Graph uses for the same thing.
const PATHS: &[(&str, &str)] = &[
    // presence
    ("/communications/presences/{id}", "presence"),
    (
        "communications/presences/4f3e8b2a-9d1c-4e5f-a6b7-c8d9e0f1a2b3",
        "presence",
    ),
    (
        "/communications/presences?$filter=id in ('{id}', '{id}')",
        "presence",
    ),
    ("communications/presences('4f3e8b2a')", "presence"),
    ("/users/{id}/presence", "presence"),
    ("me/presence", "presence"),
    // onlineMeeting call events
    (
        "communications/onlineMeetings(joinWebUrl='https%3A%2F%2Fteams.microsoft.com%2Fl%2Fmeetup-join%2F19%253ameeting_ZmYw%2540thread.v2%2F0%3Fcontext%3D%257b%2522Tid%2522%253a%2522909c%2522%257d')/meetingCallEvents",
        "callEvent",
    ),
    (
        "/communications/onlineMeetings/{id}/meetingCallEvents",
        "callEvent",
    ),
    (
        "/communications/onlineMeetings/?$filter=JoinWebUrl eq '{JoinWebUrl}'",
        "callEvent",
    ),
    (
        "communications/onlineMeetings?$filter=joinWebUrl+eq+'{joinWebUrl}'",
        "callEvent",
    ),
    // chatMessage
    ("/chats/{id}/messages", "chatMessage"),
    ("/chats/getAllMessages", "chatMessage"),
    ("/teams/getAllMessages", "chatMessage"),
    ("/users/{user-id}/chats/getAllMessages", "chatMessage"),
    ("/teams/{id}/channels/{id}/messages", "chatMessage"),
    ("/teams/{team-id}/channels/getAllMessages", "chatMessage"),
    (
        "/teams/{id}/channels/{id}/messages/{id}/replies",
        "chatMessage",
    ),
    ("/chats/getAllRetainedMessages", "chatMessage"),
    (
        "/appCatalogs/teamsApps/{id}/installedToChats/getAllMessages",
        "chatMessage",
    ),
    (
        "chats('19:8b081ef6_877192bd@unq.gbl.spaces')/messages('1612289765949')",
        "chatMessage",
    ),
    (
        "teams('d29828b8-c04d-4e2a-b2f6-07da6982f0f0')/channels('19:f127a8c55ad949d1a238464d22f0f99e@thread.skype')/messages('1565045424600')/replies('1565047490246')",
        "chatMessage",
    ),
    ("teams('t')/primaryChannel/messages('1')", "chatMessage"),
    // callRecording, callTranscript
    (
        "communications/onlineMeetings/getAllRecordings",
        "callRecording",
    ),
    (
        "communications/onlineMeetings/{onlineMeetingId}/recordings",
        "callRecording",
    ),
    (
        "users/{userId}/onlineMeetings/getAllRecordings",
        "callRecording",
    ),
    (
        "appCatalogs/teamsApps/{id}/installedToOnlineMeetings/getAllRecordings",
        "callRecording",
    ),
    (
        "communications/adhocCalls/getAllRecordings",
        "callRecording",
    ),
    (
        "communications/onlineMeetings('m')/recordings('r')",
        "callRecording",
    ),
    (
        "users('u')/onlineMeetings('m')/recordings('r')",
        "callRecording",
    ),
    (
        "communications/onlineMeetings/getAllTranscripts",
        "callTranscript",
    ),
    (
        "communications/onlineMeetings/{onlineMeetingId}/transcripts",
        "callTranscript",
    ),
    (
        "users/{userId}/onlineMeetings/getAllTranscripts",
        "callTranscript",
    ),
    (
        "appCatalogs/teamsApps/{id}/installedToOnlineMeetings/getAllTranscripts",
        "callTranscript",
    ),
    (
        "users/{userId}/adhocCalls/getAllTranscripts",
        "callTranscript",
    ),
    (
        "communications/onlineMeetings('m')/transcripts('t')",
        "callTranscript",
    ),
    (
        "communications/adhocCalls('c')/transcripts('t')",
        "callTranscript",
    ),
    // chat
    ("/chats", "chat"),
    ("/chats/{id}", "chat"),
    (
        "chats('19:2da4c29f6d7041eca70b638b43d45437@thread.v2')",
        "chat",
    ),
    ("/users/{id}/chats", "chat"),
    ("/appCatalogs/teamsApps/{id}/installedToChats", "chat"),
    // team, channel
    ("/teams", "team"),
    ("/teams/{id}", "team"),
    ("teams('b5bfb4f5-c1f0-4c4e-8c8f-2a1d4e5c6b7a')", "team"),
    ("/teams/getAllChannels", "channel"),
    ("/teams/{id}/channels", "channel"),
    ("teams('t')/channels('19:4b6bed8d@thread.tacv2')", "channel"),
    // conversationMember
    ("/teams/{id}/members", "conversationMember"),
    ("/chats/{id}/members", "conversationMember"),
    ("/chats/getAllMembers", "conversationMember"),
    ("/teams/{id}/channels/getAllMembers", "conversationMember"),
    ("/teams/{id}/channels/{id}/members", "conversationMember"),
    (
        "/appCatalogs/teamsApps/{id}/installedToChats/getAllMembers",
        "conversationMember",
    ),
    (
        "chats('19:x@thread.v2')/members('MCMjMSMj')",
        "conversationMember",
    ),
    ("teams('t')/members('m')", "conversationMember"),
    // aiInteraction
    (
        "copilot/interactionHistory/getAllEnterpriseInteractions",
        "aiInteraction",
    ),
    (
        "copilot/users/{userId}/interactionHistory/getAllEnterpriseInteractions",
        "aiInteraction",
    ),
    (
        "/copilot/users('u')/interactionHistory/getAllEnterpriseInteractions",
        "aiInteraction",
    ),
    (
        "copilot/interactionHistory/interactions('1731701801008')",
        "aiInteraction",
    ),
    // Outlook message, event, contact
    ("/users/{id}/messages", "message"),
    (
        "/users/{id}/messages?$select=Subject,bodyPreview,importance,receivedDateTime,from",
        "message",
    ),
    ("/users/{id}/mailFolders/{id}/messages", "message"),
    ("me/mailFolders('Inbox')/messages", "message"),
    ("/me/messages", "message"),
    (
        "Users/{user_guid}@{tenant_guid}/Messages/{long_id_string}",
        "message",
    ),
    (
        "users/{user_guid}@{tenant_guid}/messages/{long_id_string}",
        "message",
    ),
    (
        "Users('722effaf-0433-4272-9ac4-d5ec11c3cd77')/messages('AAMkAGUwNjQ4ZjIxLTQ3Y2Y8AAA=')",
        "message",
    ),
    (
        "users/u/mailFolders/inbox/childFolders/f/messages/m",
        "message",
    ),
    ("/users/{id}/events", "event"),
    ("/users/{id}/events?$select=subject,start,end", "event"),
    ("/me/calendar/events", "event"),
    ("users/{id}/calendars/{id}/events", "event"),
    ("Users/u/Events/e", "event"),
    ("groups/{id}/calendar/events", "event"),
    ("/users/{id}/contacts", "contact"),
    ("/users/{id}/contactFolders/{id}/contacts", "contact"),
    ("users('u')/contacts('c')", "contact"),
    // Case, percent-encoding, leading slashes, empty segments.
    ("CHATS('x')/MESSAGES('y')", "chatMessage"),
    ("%63hats/%67etAllMessages", "chatMessage"),
    ("%43hats/getallmessages", "chatMessage"),
    ("//users//u/messages/", "message"),
    ("chats('a/b?c')/messages('it''s')", "chatMessage"),
    // Paths that match nothing: `other`, never a guess.
    ("", "other"),
    ("/", "other"),
    ("users/u", "other"),
    ("users/u/drive/root", "other"),
    ("sites/s/lists/l", "other"),
    ("security/alerts", "other"),
    ("communications/callRecords", "other"),
    ("users/u/onlineMeetings", "other"),
    ("users/u/messages/m/replies/r", "other"),
    ("chats/x/somethingNew/messages", "other"),
    ("foo/chats/x/messages", "other"),
    ("chats('x/messages", "other"),
    ("chats('x')y/messages", "other"),
    ("chats/x/y/messages", "other"),
    ("chats('x')/messages('1')/$value", "other"),
    (
        "users/u/interactionHistory/getAllEnterpriseInteractions",
        "other",
    ),
    ("communications/presences/a/b", "other"),
    ("%ZZhats/getAllMessages", "other"),
    ("messages", "other"),
    ("presence", "other"),
];

#[test]
fn every_documented_path_form_has_its_kind() {
    let mut failures = Vec::new();
    for (path, kind) in PATHS {
        let got = PathKind::of(path);
        if got.as_str() != *kind {
            failures.push(format!("{path:?}: {got} (want {kind})"));
        }
        // The same through typing a payload with no @odata.type.
        let typed = Resource::from_json(b"{}", Some(path)).unwrap();
        assert_eq!(typed.kind(), *kind, "{path}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every kind is covered.
    for kind in [
        "presence",
        "chatMessage",
        "callEvent",
        "callRecording",
        "callTranscript",
        "chat",
        "team",
        "channel",
        "conversationMember",
        "aiInteraction",
        "message",
        "event",
        "contact",
        "other",
    ] {
        assert!(PATHS.iter().any(|(_, k)| *k == kind), "{kind}");
    }
}

/// The faults the issue names: kinds that were guessed from substrings.
#[test]
fn the_named_misclassifications_are_fixed() {
    let transcript = json!({"id": "t", "meetingId": "m", "createdDateTime": "2023-03-07T22:49:14Z",
        "transcriptContentUrl": "https://graph.microsoft.com/v1.0/x/content"});
    let bytes = serde_json::to_vec(&transcript).unwrap();
    let r = Resource::from_json(
        &bytes,
        Some("communications/onlineMeetings('m')/transcripts('t')"),
    )
    .unwrap();
    let Resource::CallTranscript(t) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        t.transcript_content_url.as_deref(),
        Some("https://graph.microsoft.com/v1.0/x/content")
    );
    let r = Resource::from_json(
        br#"{"id":"r"}"#,
        Some("communications/onlineMeetings('m')/recordings('r')"),
    )
    .unwrap();
    assert_eq!(r.kind(), "callRecording");
    let r = Resource::from_json(br#"{"subject":"hi"}"#, Some("Users/u/Messages/id")).unwrap();
    let Resource::Message(m) = r else {
        panic!("{r:?}")
    };
    assert_eq!(m.subject.as_deref(), Some("hi"));
    // A whole onlineMeeting is not a call event...
    let meeting = br##"{"@odata.type":"#microsoft.graph.onlineMeeting","id":"m","subject":"Sync",
        "joinWebUrl":"https://teams.microsoft.com/l/meetup-join/x"}"##;
    for path in [
        None,
        Some("communications/onlineMeetings('m')/meetingCallEvents"),
    ] {
        let r = Resource::from_json(meeting, path).unwrap();
        assert!(
            matches!(&r, Resource::Other(v) if v["subject"] == "Sync"),
            "{r:?}"
        );
    }
    // ...but the older meeting call events, typed onlineMeeting with an eventType, still are.
    let legacy = br##"{"@odata.type":"#Microsoft.Graph.onlineMeeting","eventType":"Microsoft.Communication.CallStarted","state":"active"}"##;
    assert_eq!(
        Resource::from_json(legacy, None).unwrap().kind(),
        "callEvent"
    );
}

fn agree(json: &Value, path: Option<&str>) -> Resource {
    let bytes = serde_json::to_vec(json).unwrap();
    let direct = Resource::from_json(&bytes, path).unwrap();
    assert_eq!(
        direct,
        Resource::from_value(json.clone(), path),
        "{json} {path:?}"
    );
    direct
}

#[test]
fn each_doc_sample_is_typed_from_its_path_alone_and_its_type_alone() {
    let samples = doc_samples();
    assert_eq!(samples.len(), 13);
    for s in &samples {
        assert!(s.json.get("@odata.type").is_none(), "{}", s.kind);
        assert_eq!(PathKind::of(s.resource).as_str(), s.kind, "{}", s.resource);
        assert_eq!(
            agree(&s.json, Some(s.resource)).kind(),
            s.kind,
            "path alone"
        );
        assert_eq!(agree(&s.typed_json(), None).kind(), s.kind, "type alone");
        assert_eq!(agree(&s.json, None).kind(), "other", "neither: {}", s.kind);
        // Unknown properties survive typing.
        let mut extended = s.typed_json();
        extended["futureProperty"] = json!({"nested": [1, 2]});
        let r = agree(&extended, Some(s.resource));
        let again = match &r {
            Resource::Other(v) => panic!("{} not typed: {v}", s.kind),
            _ => format!("{r:?}"),
        };
        assert!(again.contains("futureProperty"), "{}", s.kind);
    }
}

#[test]
fn a_type_and_a_path_that_disagree_keep_the_type() {
    let samples = doc_samples();
    for typed in &samples {
        for other in &samples {
            let r = agree(&typed.typed_json(), Some(other.resource));
            assert_eq!(
                r.kind(),
                typed.kind,
                "{} under {}",
                typed.kind,
                other.resource
            );
        }
        // A type this crate does not know leaves the choice to the path.
        let mut unknown = typed.json.clone();
        unknown["@odata.type"] = json!("#microsoft.graph.somethingNew");
        assert_eq!(agree(&unknown, Some(typed.resource)).kind(), typed.kind);
    }
    // The kinds of conversationMember and message count as theirs.
    for (t, kind) in [
        (
            "#microsoft.graph.aadUserConversationMember",
            "conversationMember",
        ),
        (
            "#Microsoft.Graph.skypeForBusinessUserConversationMember",
            "conversationMember",
        ),
        ("#microsoft.graph.eventMessageRequest", "message"),
        ("#MICROSOFT.GRAPH.EVENT", "event"),
        ("microsoft.graph.contact", "contact"),
        ("#microsoft.graph.user", "other"),
        ("#graph.chat", "other"),
    ] {
        assert_eq!(agree(&json!({"@odata.type": t}), None).kind(), kind, "{t}");
    }
}

#[test]
fn typed_fields_are_read() {
    let by_kind = |kind: &str| {
        let s = doc_samples().into_iter().find(|s| s.kind == kind).unwrap();
        agree(&s.json, Some(s.resource))
    };
    let Resource::CallTranscript(t) = by_kind("callTranscript") else {
        panic!()
    };
    let organizer = t.meeting_organizer.unwrap().user.unwrap();
    assert_eq!(
        organizer.id.as_deref(),
        Some("ba321e0d-79ee-478d-8e28-85a19507f456")
    );
    assert_eq!(organizer.user_identity_type.as_deref(), Some("aadUser"));
    assert!(t.transcript_content_url.unwrap().ends_with("/content"));
    let Resource::CallRecording(r) = by_kind("callRecording") else {
        panic!()
    };
    assert!(r.meeting_organizer.is_some() && r.recording_content_url.is_some());
    let Resource::Chat(c) = by_kind("chat") else {
        panic!()
    };
    assert_eq!(c.chat_type, Some(ChatType::Group));
    let Resource::Channel(c) = by_kind("channel") else {
        panic!()
    };
    assert_eq!(c.membership_type, Some(ChannelMembershipType::Standard));
    let Resource::Team(t) = by_kind("team") else {
        panic!()
    };
    assert_eq!(t.display_name.as_deref(), Some("Contoso Team"));
    let Resource::ConversationMember(m) = by_kind("conversationMember") else {
        panic!()
    };
    assert_eq!(m.roles.as_deref(), Some(&["owner".to_owned()][..]));
    let Resource::AiInteraction(a) = by_kind("aiInteraction") else {
        panic!()
    };
    assert_eq!(a.interaction_type, Some(AiInteractionType::UserPrompt));
    assert!(a.body.unwrap().content.unwrap().contains("radar"));
    let Resource::Message(m) = by_kind("message") else {
        panic!()
    };
    assert_eq!(m.importance, Some(Importance::Normal));
    let from = m.from.unwrap().email_address.unwrap();
    assert_eq!(from.address.as_deref(), Some("Megan.Brown@microsoft.com"));
    assert_eq!(m.extra["receivedDateTime@odata.type"], "#DateTimeOffset");
    let Resource::Event(e) = by_kind("event") else {
        panic!()
    };
    assert_eq!(
        e.start.unwrap().time_zone.as_deref(),
        Some("Pacific Standard Time")
    );
    assert_eq!(e.event_type.as_deref(), Some("singleInstance"));
    let Resource::Contact(c) = by_kind("contact") else {
        panic!()
    };
    assert_eq!(
        c.email_addresses.unwrap()[0].address.as_deref(),
        Some("pavelb@contoso.com")
    );
    // Open enumerations keep values this crate does not know.
    let r = agree(&json!({"chatType": "futureChat"}), Some("chats('x')"));
    let Resource::Chat(c) = r else { panic!() };
    assert_eq!(c.chat_type.unwrap().as_str(), "futureChat");
}

#[test]
fn each_doc_sample_decrypts_to_its_kind_end_to_end() {
    let (key, cert) = test_support::keypair(2048);
    let decryptor = Decryptor::with_key(test_support::copy_key(key), Some(cert.clone())).unwrap();
    for s in doc_samples() {
        for json in [s.json.clone(), s.typed_json()] {
            let n = GraphEncryptor::new(cert, "cert-1")
                .notification(&json, &NotificationSpec::new("tenant", s.resource))
                .unwrap();
            let out = decryptor.decrypt_notification(&n).unwrap();
            assert_eq!(out.resource.kind(), s.kind, "{}", s.resource);
            assert_eq!(out.plaintext.json::<Value>().unwrap(), json);
        }
    }
}
