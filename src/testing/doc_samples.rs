//! The resources of Graph's documentation, as test data.

use serde_json::Value;

/// One decrypted resource as Graph's documentation shows it, with the resource path of the
/// notification that carries it (see [`doc_samples`]).
#[derive(Debug, Clone)]
pub struct DocSample {
    /// The kind it is: [`crate::Resource::kind`]'s name, e.g. `callTranscript`.
    pub kind: &'static str,
    /// The notification's `resource`, in the spelling the docs show for that kind.
    pub resource: &'static str,
    /// The `@odata.type` Graph names the entity with (`#microsoft.graph.callTranscript`...).
    pub odata_type: &'static str,
    /// The decrypted JSON, without `@odata.type` (as Graph sends most of these).
    pub json: Value,
}

impl DocSample {
    /// [`DocSample::json`] with `@odata.type` set to [`DocSample::odata_type`].
    pub fn typed_json(&self) -> Value {
        let mut json = self.json.clone();
        if let Some(object) = json.as_object_mut() {
            object.insert("@odata.type".into(), Value::String(self.odata_type.into()));
        }
        json
    }
}

/// The decrypted resource of each kind this crate types, shaped as in Graph's documentation of
/// change notifications with resource data (`teams-changenotifications-*`,
/// `outlook-change-notifications-overview`, `aiinteraction-changenotifications`), with the
/// resource paths the docs' notifications carry.
///
/// ```
/// let samples = msgraph_notify::testing::doc_samples();
/// assert!(samples.iter().any(|s| s.kind == "callTranscript"));
/// ```
pub fn doc_samples() -> Vec<DocSample> {
    use serde_json::json;
    let organizer = json!({"application": null, "device": null,
        "user": {"id": "ba321e0d-79ee-478d-8e28-85a19507f456", "displayName": null,
                 "userIdentityType": "aadUser", "tenantId": "cd2e8cb9-b4a4-4a4e-94d3-8b2ba4a6de2b"}});
    vec![
        DocSample {
            kind: "presence",
            resource: "communications/presences/4f3e8b2a-9d1c-4e5f-a6b7-c8d9e0f1a2b3",
            odata_type: "#microsoft.graph.presence",
            json: json!({"id": "4f3e8b2a-9d1c-4e5f-a6b7-c8d9e0f1a2b3", "availability": "Busy",
                         "activity": "InACall", "sequenceNumber": "C1jM3v",
                         "statusMessage": null}),
        },
        DocSample {
            kind: "chatMessage",
            resource: "chats('19:8b081ef6-4792-4def-b2c9-c363a1bf41d5_877192bd-9183-47d3-a74c-8aa0426716cf@unq.gbl.spaces')/messages('1612289765949')",
            odata_type: "#microsoft.graph.chatMessage",
            json: json!({"id": "1612289765949", "replyToId": null, "etag": "1612289765949",
                "messageType": "message", "createdDateTime": "2021-02-02T18:16:05.949Z",
                "chatId": "19:8b081ef6-4792-4def-b2c9-c363a1bf41d5_877192bd-9183-47d3-a74c-8aa0426716cf@unq.gbl.spaces",
                "importance": "normal", "locale": "en-us",
                "from": {"user": {"id": "8ea0e38b-efb3-4757-924a-5f94061cf8c2", "displayName": "Robin Kline",
                                  "userIdentityType": "aadUser"}},
                "body": {"contentType": "text", "content": "Hello World"},
                "attachments": [], "mentions": [], "reactions": []}),
        },
        DocSample {
            kind: "callEvent",
            resource: "communications/onlineMeetings(joinWebUrl='https%3A%2F%2Fteams.microsoft.com%2Fl%2Fmeetup-join%2F19%253ameeting_ZmYwZTEy%2540thread.v2%2F0')/meetingCallEvents",
            odata_type: "#microsoft.graph.callEvent",
            json: json!({"id": "2b3f0d6e-0c34-4b5b-9a1f-1b2c3d4e5f60", "eventType": "rosterUpdated",
                "eventDateTime": "2023-09-18T22:15:30.1234567Z",
                "participants@delta": [{"id": "3a4b5c6d", "isInLobby": false,
                    "info": {"identity": {"user": {"id": "8ea0e38b", "displayName": "Robin Kline"}}},
                    "removedState": {"reason": "Participant left the call"}}]}),
        },
        DocSample {
            kind: "callRecording",
            resource: "communications/onlineMeetings('MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ')/recordings('VjIjIzFhNTk3YmE1LTFmMzAtNDg5Yy1hOWU2LWE3ZDAwMjM2NjA1Nw')",
            odata_type: "#microsoft.graph.callRecording",
            json: json!({"id": "VjIjIzFhNTk3YmE1LTFmMzAtNDg5Yy1hOWU2LWE3ZDAwMjM2NjA1Nw",
                "meetingId": "MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ",
                "createdDateTime": "2023-03-07T22:49:14.4425327Z",
                "recordingContentUrl": "https://graph.microsoft.com/v1.0/users/ba321e0d-79ee-478d-8e28-85a19507f456/onlineMeetings/MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ/recordings/VjIjIzFhNTk3YmE1LTFmMzAtNDg5Yy1hOWU2LWE3ZDAwMjM2NjA1Nw/content",
                "meetingOrganizer": organizer.clone()}),
        },
        DocSample {
            kind: "callTranscript",
            resource: "communications/onlineMeetings('MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ')/transcripts('MSMjMCMjZDAwYWU3NjUtNmM2Yi00NjQxLTgwMWQtMTkzMmFmMjEzNzdh')",
            odata_type: "#microsoft.graph.callTranscript",
            json: json!({"id": "MSMjMCMjZDAwYWU3NjUtNmM2Yi00NjQxLTgwMWQtMTkzMmFmMjEzNzdh",
                "meetingId": "MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ",
                "createdDateTime": "2023-03-07T22:49:14.4425327Z",
                "transcriptContentUrl": "https://graph.microsoft.com/v1.0/users/ba321e0d-79ee-478d-8e28-85a19507f456/onlineMeetings/MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ/transcripts/MSMjMCMjZDAwYWU3NjUtNmM2Yi00NjQxLTgwMWQtMTkzMmFmMjEzNzdh/content",
                "meetingOrganizer": organizer}),
        },
        DocSample {
            kind: "chat",
            resource: "chats('19:2da4c29f6d7041eca70b638b43d45437@thread.v2')",
            odata_type: "#microsoft.graph.chat",
            json: json!({"id": "19:2da4c29f6d7041eca70b638b43d45437@thread.v2", "topic": "Meeting chat sample",
                "createdDateTime": "2021-03-08T22:17:50.581Z", "lastUpdatedDateTime": "2021-03-08T22:17:50.581Z",
                "chatType": "group", "isHiddenForAllMembers": false,
                "webUrl": "https://teams.microsoft.com/l/chat/19%3A2da4c29f6d7041eca70b638b43d45437%40thread.v2/0",
                "tenantId": "b33cbe9f-8ebe-4f2a-912b-7e2a427f477f", "onlineMeetingInfo": null}),
        },
        DocSample {
            kind: "team",
            resource: "teams('b5bfb4f5-c1f0-4c4e-8c8f-2a1d4e5c6b7a')",
            odata_type: "#microsoft.graph.team",
            json: json!({"id": "b5bfb4f5-c1f0-4c4e-8c8f-2a1d4e5c6b7a", "displayName": "Contoso Team",
                "description": "This is a Contoso team.", "createdDateTime": "2021-02-02T18:16:05.949Z",
                "visibility": "public", "isArchived": false, "classification": null,
                "webUrl": "https://teams.microsoft.com/l/team/19:09fc54a3141a45d0bc769cf506d2e079%40thread.skype/conversations?groupId=b5bfb4f5-c1f0-4c4e-8c8f-2a1d4e5c6b7a&tenantId=b33cbe9f-8ebe-4f2a-912b-7e2a427f477f"}),
        },
        DocSample {
            kind: "channel",
            resource: "teams('b5bfb4f5-c1f0-4c4e-8c8f-2a1d4e5c6b7a')/channels('19:4b6bed8d24574f6a9e436813cb2617d8@thread.tacv2')",
            odata_type: "#microsoft.graph.channel",
            json: json!({"id": "19:4b6bed8d24574f6a9e436813cb2617d8@thread.tacv2",
                "createdDateTime": "2020-05-27T19:22:25.692Z", "displayName": "General",
                "description": "AutoTestTeam_20210311_150740.2550_fim3udfdjen9",
                "membershipType": "standard", "email": "someperson@microsoft.com",
                "tenantId": "b33cbe9f-8ebe-4f2a-912b-7e2a427f477f",
                "webUrl": "https://teams.microsoft.com/l/channel/19%3A4b6bed8d24574f6a9e436813cb2617d8%40thread.tacv2/General"}),
        },
        DocSample {
            kind: "conversationMember",
            resource: "chats('19:2da4c29f6d7041eca70b638b43d45437@thread.v2')/members('MCMjMSMjY2Q2NjQ5NGEtYmJmOC00NDk4LWI2MDctOGU5ZmY1YjQyNmY4')",
            odata_type: "#microsoft.graph.aadUserConversationMember",
            json: json!({"id": "MCMjMSMjY2Q2NjQ5NGEtYmJmOC00NDk4LWI2MDctOGU5ZmY1YjQyNmY4", "roles": ["owner"],
                "displayName": "Adele Vance", "visibleHistoryStartDateTime": "0001-01-01T00:00:00Z",
                "userId": "73761f06-2ac9-469c-9f10-279a8cc267f9", "email": "AdeleV@contoso.com",
                "tenantId": "b33cbe9f-8ebe-4f2a-912b-7e2a427f477f"}),
        },
        DocSample {
            kind: "aiInteraction",
            resource: "copilot/interactionHistory/interactions('1731701801008')",
            odata_type: "#microsoft.graph.aiInteraction",
            json: json!({"id": "1731701801008", "sessionId": "19:2da4c29f6d7041eca70b638b43d45437@thread.v2",
                "requestId": "GTbr3lIdyQNYnagwg0Ji9", "appClass": "IPM.SkypeTeams.Message.Copilot.BizChat",
                "interactionType": "userPrompt", "conversationType": "bizchat", "etag": "1731701801008",
                "createdDateTime": "2024-11-15T20:16:41.008Z", "locale": "en-us",
                "from": {"user": {"id": "73761f06-2ac9-469c-9f10-279a8cc267f9", "displayName": "Adele Vance"}},
                "body": {"contentType": "text", "content": "What should be on my radar from emails last week?"},
                "attachments": [], "links": [], "mentions": [], "contexts": []}),
        },
        DocSample {
            kind: "message",
            resource: "Users('722effaf-0433-4272-9ac4-d5ec11c3cd77')/messages('AAMkAGUwNjQ4ZjIxLTQ3Y2Y8AAA=')",
            odata_type: "#microsoft.graph.message",
            json: json!({"receivedDateTime@odata.type": "#DateTimeOffset",
                "receivedDateTime": "2021-12-30T10:53:35Z",
                "subject": "TEST MESSAGE FOR RICH NOTIFICATIONS",
                "bodyPreview": "Hello,\r\n\r\nWhat\u{2019}s up?\r\n\r\nThanks\r\nMegan",
                "importance@odata.type": "#microsoft.graph.importance", "importance": "normal",
                "from": {"@odata.type": "#microsoft.graph.recipient",
                         "emailAddress": {"@odata.type": "#microsoft.graph.emailAddress",
                                          "name": "Megan Brown", "address": "Megan.Brown@microsoft.com"}}}),
        },
        DocSample {
            kind: "event",
            resource: "Users/722effaf-0433-4272-9ac4-d5ec11c3cd77/Events/AAMkAGUwNjQ4ZjIxLTQ3Y2YAAA=",
            odata_type: "#microsoft.graph.event",
            json: json!({"subject": "Plan summer company picnic",
                "start": {"dateTime": "2026-12-15T12:00:00.0000000", "timeZone": "Pacific Standard Time"},
                "end": {"dateTime": "2026-12-15T14:00:00.0000000", "timeZone": "Pacific Standard Time"},
                "organizer": {"emailAddress": {"name": "Megan Brown", "address": "Megan.Brown@microsoft.com"}},
                "isOnlineMeeting": false, "importance": "normal", "type": "singleInstance"}),
        },
        DocSample {
            kind: "contact",
            resource: "users/722effaf-0433-4272-9ac4-d5ec11c3cd77/contactFolders/AAMkAGI2=/contacts/AAMkAGI2THk0AAA=",
            odata_type: "#microsoft.graph.contact",
            json: json!({"displayName": "Pavel Bansky", "givenName": "Pavel", "surname": "Bansky",
                "emailAddresses": [{"name": "Pavel Bansky", "address": "pavelb@contoso.com"}],
                "businessPhones": ["+1 732 555 0102"], "mobilePhone": null}),
        },
    ]
}
