//! The draft and event model: validated values and the rules of a draft's
//! life (what may change, when it is complete, when it is live). No I/O here.

mod change;
mod content;
mod draft;
mod event;
mod ids;
mod page_token;
mod time;
mod violations;

pub use change::{ChangeId, ChangeKind, EventChange, FeedCursor, Position};
pub use content::{Description, Location, Title};
pub use draft::{Draft, DraftContent, DraftField, DraftPatch, DraftStatus, NewDraft, StatusFilter};
pub use event::{Event, EventStatus};
pub use ids::{DraftId, EventId, OrganizationId, RequestId};
pub use page_token::{Cursor, PageSize, PageToken};
pub use time::{Clock, SystemClock, Timestamp};
pub use violations::{Described, DraftIncomplete, FieldViolation, Invalid, Violations};
