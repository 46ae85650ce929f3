//! `forward` mode: the upgrade request's `Cookie` and `Authorization` go to
//! an auth backend (the same contract as nginx's `auth_request`). A 2xx
//! answer naming the identity in the identity header admits; 401 and 403
//! are passed on to the client; anything else, no answer in time or no
//! connection is a 503. One short-lived HTTP/1.1 connection per check: an
//! auth check happens once per WebSocket, not per message.

use std::error::Error;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{AUTHORIZATION, COOKIE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use switchboard_room::Identity;
use tokio::net::TcpStream;
use tracing::warn;

use super::config::ForwardConfig;
use super::{carrier, header_values, valid_subject, Admitted, Denied, Presented};

pub(crate) struct Forwarder {
    config: ForwardConfig,
}

/// The backend's answer, as far as the edge reads it.
struct Answer {
    status: StatusCode,
    /// Every value of the identity header.
    identities: Vec<String>,
}

impl Forwarder {
    pub(crate) fn new(config: ForwardConfig) -> Forwarder {
        Forwarder { config }
    }

    pub(crate) async fn admit(&self, header: &str, request: &Presented<'_>) -> Result<Admitted, Denied> {
        let answer = match tokio::time::timeout(self.config.timeout, self.ask(header, request)).await {
            Err(_) => {
                warn!(url = %self.config.url, timeout_ms = self.config.timeout.as_millis() as u64, "the auth backend did not answer in time");
                return Err(Denied::unavailable("the auth backend did not answer in time"));
            }
            Ok(Err(e)) => {
                warn!(url = %self.config.url, error = %e, "cannot ask the auth backend");
                return Err(Denied::unavailable("the auth backend is unavailable"));
            }
            Ok(Ok(answer)) => answer,
        };
        match answer.status {
            status if status.is_success() => match answer.identities.as_slice() {
                [subject] if valid_subject(subject.trim()) => Ok(Admitted {
                    identity: Some(Identity { subject: subject.trim().to_owned(), claims: Vec::new() }),
                    expires: None,
                    via_protocol: false,
                    token: false,
                }),
                _ => {
                    warn!(url = %self.config.url, header, "the auth backend admitted a request without one valid identity header");
                    Err(Denied::unavailable("the auth backend answered without an identity"))
                }
            },
            StatusCode::UNAUTHORIZED => Err(Denied::unauthorized("refused by the auth backend")),
            StatusCode::FORBIDDEN => Err(Denied::forbidden("refused by the auth backend")),
            status => {
                warn!(url = %self.config.url, status = status.as_u16(), "unexpected answer from the auth backend");
                Err(Denied::unavailable("the auth backend failed"))
            }
        }
    }

    async fn ask(&self, header: &str, request: &Presented<'_>) -> Result<Answer, Box<dyn Error + Send + Sync>> {
        let url = &self.config.url;
        let host = url.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let stream = TcpStream::connect((host, url.port_u16().unwrap_or(80))).await?;
        stream.set_nodelay(true)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await?;
        let path = url.path_and_query().map_or("/", |p| p.as_str());
        let mut builder = Request::get(path).header(HOST, url.authority().map_or(host, |a| a.as_str()));
        for value in header_values(request.headers, "cookie") {
            builder = builder.header(COOKIE, value);
        }
        for value in header_values(request.headers, "authorization") {
            builder = builder.header(AUTHORIZATION, value);
        }
        // What nginx's auth_request tells its backend, minus any token in
        // the query.
        builder = builder.header("x-original-uri", carrier::redact_target(request.target)).header("x-forwarded-for", request.peer.ip().to_string());
        let outgoing = builder.body(Empty::new())?;
        // The connection is driven here, not spawned: a timeout drops both.
        let send = sender.send_request(outgoing);
        tokio::pin!(send, conn);
        let response = tokio::select! {
            biased;
            response = &mut send => response?,
            // A backend that answers and closes at once ends the connection
            // in the same wake-up: the answer is already in the channel.
            ended = &mut conn => {
                ended?;
                send.await?
            }
        };
        let identities = response.headers().get_all(header).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
        Ok(Answer { status: response.status(), identities })
    }
}
