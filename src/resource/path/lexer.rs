//! The path's words: segments split outside quotes and parentheses, names matched
//! case-insensitively through percent-encoding.

use super::{NAMES, Name};

/// One segment: its whole text, its name (before any `(`), and whether it had an inline key.
pub(super) struct Segment<'a> {
    pub(super) text: &'a str,
    pub(super) name: &'a str,
    pub(super) key: bool,
}

/// The segments of a path, split at `/` outside quotes and parentheses, up to a `?` outside them.
/// Yields `Err(())` once for unbalanced quotes or parentheses or text after a `)`.
pub(super) struct Segments<'a> {
    rest: &'a str,
    done: bool,
}

impl<'a> Segments<'a> {
    pub(super) fn new(path: &'a str) -> Self {
        Segments {
            rest: path,
            done: false,
        }
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Result<Segment<'a>, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let bytes = self.rest.as_bytes();
        // The name: up to `/`, `?`, `(` or `)`.
        let name_len = bytes
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'(' | b')'))
            .unwrap_or(bytes.len());
        let key = bytes.get(name_len) == Some(&b'(');
        let mut end = name_len;
        if key {
            // The key: balanced parentheses; a quote hides everything up to the next quote (`''`
            // inside a quoted key is an escaped quote: closing then reopening is the same).
            let mut depth = 0usize;
            let mut close = None;
            let mut i = name_len;
            while let Some(&b) = bytes.get(i) {
                match b {
                    b'\'' => {
                        // Skip to the closing quote (a fast search: keys are mostly quoted).
                        let Some(quote) = self.rest.get(i + 1..).and_then(|r| r.find('\'')) else {
                            return self.fail();
                        };
                        i += quote + 1;
                    }
                    b'(' => depth += 1,
                    b')' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            close = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            let Some(close) = close else {
                return self.fail();
            };
            end = close + 1;
        }
        let last = match bytes.get(end) {
            None | Some(b'?') => true,
            Some(b'/') => false,
            // A `)` outside a key, or text after one.
            Some(_) => return self.fail(),
        };
        let (Some(text), Some(name)) = (self.rest.get(..end), self.rest.get(..name_len)) else {
            return self.fail();
        };
        if last {
            self.done = true;
            self.rest = "";
        } else {
            self.rest = self.rest.get(end + 1..).unwrap_or("");
        }
        Some(Ok(Segment { text, name, key }))
    }
}

impl Segments<'_> {
    fn fail<'b>(&mut self) -> Option<Result<Segment<'b>, ()>> {
        self.done = true;
        Some(Err(()))
    }
}

/// The name `raw` spells (case-insensitive, percent-decoded), if the grammar knows it.
pub(super) fn lookup(raw: &str) -> Option<Name> {
    let bytes = raw.as_bytes();
    if bytes.contains(&b'%') {
        return NAMES
            .iter()
            .find(|(word, _)| percent_eq_ignore_case(raw, word))
            .map(|&(_, name)| name);
    }
    // Only the names of the same length need a comparison.
    use Name::*;
    let candidates: &[(&str, Name)] = match bytes.len() {
        2 => &[("me", Me)],
        5 => &[("chats", Chats), ("teams", Teams), ("users", Users)],
        6 => &[("events", Events), ("groups", Groups)],
        7 => &[
            ("copilot", Copilot),
            ("members", Members),
            ("replies", Replies),
        ],
        8 => &[
            ("messages", Messages),
            ("channels", Channels),
            ("presence", Presence),
            ("calendar", Calendar),
            ("contacts", Contacts),
        ],
        9 => &[
            ("presences", Presences),
            ("calendars", Calendars),
            ("teamsApps", TeamsApps),
        ],
        10 => &[("adhocCalls", AdhocCalls), ("recordings", Recordings)],
        11 => &[
            ("appCatalogs", AppCatalogs),
            ("mailFolders", MailFolders),
            ("transcripts", Transcripts),
        ],
        12 => &[
            ("childFolders", ChildFolders),
            ("interactions", Interactions),
        ],
        13 => &[("getAllMembers", GetAllMembers)],
        14 => &[
            ("getAllMessages", GetAllMessages),
            ("communications", Communications),
            ("onlineMeetings", OnlineMeetings),
            ("contactFolders", ContactFolders),
            ("getAllChannels", GetAllChannels),
            ("primaryChannel", PrimaryChannel),
        ],
        16 => &[
            ("getAllRecordings", GetAllRecordings),
            ("installedToChats", InstalledToChats),
        ],
        17 => &[
            ("meetingCallEvents", MeetingCallEvents),
            ("getAllTranscripts", GetAllTranscripts),
        ],
        18 => &[("interactionHistory", InteractionHistory)],
        22 => &[("getAllRetainedMessages", GetAllRetainedMessages)],
        25 => &[("installedToOnlineMeetings", InstalledToOnlineMeetings)],
        28 => &[("getAllEnterpriseInteractions", GetAllEnterpriseInteractions)],
        _ => return None,
    };
    candidates
        .iter()
        .find(|(word, _)| raw.eq_ignore_ascii_case(word))
        .map(|&(_, name)| name)
}

/// Whether the percent-decoded `raw` equals `word`, ASCII case-insensitively.
pub(super) fn percent_eq_ignore_case(raw: &str, word: &str) -> bool {
    let raw = raw.as_bytes();
    let mut word = word.bytes();
    let mut i = 0;
    while i < raw.len() {
        let b = if raw[i] == b'%' {
            let (Some(&h), Some(&l)) = (raw.get(i + 1), raw.get(i + 2)) else {
                return false;
            };
            let (Some(h), Some(l)) = (hex(h), hex(l)) else {
                return false;
            };
            i += 3;
            h * 16 + l
        } else {
            i += 1;
            raw[i - 1]
        };
        match word.next() {
            Some(w) if w.eq_ignore_ascii_case(&b) => {}
            _ => return false,
        }
    }
    word.next().is_none()
}

pub(super) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
