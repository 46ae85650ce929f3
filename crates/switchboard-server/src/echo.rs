//! The echo room kind: every text and binary message goes back unchanged to
//! its sender. It is the Autobahn|Testsuite target, so it adds nothing of its
//! own: no welcome, no state.

use switchboard_net::{Handler, Outbox};
use switchboard_proto::Message;

/// One echo connection.
pub(crate) struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, message: Message, out: &mut Outbox<'_>) {
        // A closing connection refuses sends; nothing else to do then.
        let _ = out.send(&message);
    }
}
