// The call page: one room of the `call` kind (wire format: docs/call.md)
// through the browser client (/client.js), and a WebRTC peer connection to
// every other peer (a mesh).
//
// Without `?room=` the page offers to start a call: "New call" makes a
// random UUID and opens it. With a room, the page asks for the camera and
// microphone first (a refusal is shown, and the call goes on receive-only),
// then joins. Every `joined` starts the call afresh: after the signaling
// socket reconnects, the server has given this page a new id, told the
// others that the old one left and this one joined, so every pair
// negotiates again.
//
// Each pair of peers uses the "perfect negotiation" pattern: either side
// may offer at any time; the one with the smaller id is polite and rolls
// back its own offer on a collision, the other ignores the colliding offer.
// When a peer joins, the peers already there make the first offer and the
// newcomer adds its tracks only when it answers (or after a while without
// an offer), so a join does not begin with a collision: Chromium, rolling
// back an offer whose candidates it was already gathering, was seen to
// leave that connection without candidates for good. Later changes (a
// camera turned on for the first time, an ICE restart after a failure)
// renegotiate through the same rules. Turning the camera off replaces the
// sent track with none and stops the camera; turning it on again puts a
// new track in its place, so neither needs a renegotiation.
//
// `?relay` restricts every connection to TURN relays (iceTransportPolicy
// "relay"), to check a TURN server. Text from the network reaches the page
// through textContent only.

import { connect } from '/client.js';
import { ROOM_ID, badRoomText, byId as $, closeWhenLeaving, el, roomFromQuery, showNextAttempt, showRoomName, showStatus } from '/apps/common.js';

// The display name is kept in this browser for the next call.
const NAME_KEY = 'switchboard.call.name';
// How long a peer connection may take to connect before the page says it
// cannot. ICE gives up by itself only after about half a minute; a person
// waiting for a face wants to know sooner that something is wrong.
const CONNECT_TIMEOUT_MS = 20_000;
// How long a newcomer waits for a peer's first offer before offering
// itself (a peer that never offers would otherwise never be connected).
const OFFER_WAIT_MS = 5_000;

const view = {
  roomLabel: $('room-label'),
  room: $('room'),
  status: $('status'),
  lobby: $('lobby'),
  inCall: $('in-call'),
  left: $('left'),
  notices: $('notices'),
  link: $('link'),
  copyLink: $('copy-link'),
  copied: $('copied'),
  tiles: $('tiles'),
  localTile: $('tile-local'),
  localVideo: $('local-video'),
  name: $('name'),
  mute: $('mute'),
  camera: $('camera'),
  leave: $('leave'),
};

const params = new URLSearchParams(location.search);
const roomName = roomFromQuery('');
const relayOnly = params.has('relay');

/** What the page knows, for people and tests poking at it from the console. */
const state = {
  room: roomName,
  status: 'closed',
  me: null, // this page's peer id, from the last `joined`
  ice: [], // iceServers from the last `joined`
  limits: null,
  muted: false,
  cameraOff: false,
  name: loadName(),
  media: 'none', // 'pending', 'ok', 'audio-only', 'video-only', 'refused', 'unavailable', 'none'
  full: false,
  left: false,
};

/** The other peers by id: { id, name, muted, cameraOff, pc, polite, ... }. */
const remotes = new Map();

let room = null;
let localStream = new MediaStream();
// Messages are handled one at a time: a signal's handling waits on the
// peer connection, and the next signal must find it done.
let queue = Promise.resolve();

// --- start ---

for (const id of ['new-call', 'new-call-top', 'new-call-left']) $(id).addEventListener('click', newCall);
$('rejoin').addEventListener('click', () => location.reload());

if (roomName === '') {
  showView('lobby');
} else if (!ROOM_ID.test(roomName)) {
  showView('lobby');
  setNotice('bad-room', badRoomText(roomName));
} else {
  showRoomName(view.room, roomName, 'Call');
  view.roomLabel.hidden = false;
  view.link.value = location.href;
  view.name.value = state.name;
  showView('in-call');
  startCall();
}

async function startCall() {
  setStatus('connecting', 'starting camera…');
  await startMedia();
  if (state.left) return;
  showLocal();
  room = connect({ kind: 'call', id: roomName });
  room.on('status', ({ status }) => setStatus(status));
  room.on('message', ({ json, data }) => {
    if (json && typeof json === 'object' && typeof json.type === 'string') {
      queue = queue.then(() => handle(json)).catch((error) => console.warn('call: handling', json.type, error));
    } else {
      console.warn('call: ignoring a message that is not a typed JSON object', data);
    }
  });
  room.on('close', ({ code, reason, willReconnect, delay }) => {
    if (willReconnect) {
      showNextAttempt(view.status, delay);
      setNotice('reconnecting', 'Lost the connection to the server; reconnecting… The call resumes once it is back.');
      markRemotesStale();
    } else if (!state.left && !state.full) {
      const why = reason ? `: ${reason}` : '';
      setNotice('closed', `Disconnected by the server (code ${code}${why}). Reload the page to join again.`);
      endCall();
    }
  });
  room.on('error', ({ error, data }) => {
    // Socket errors accompany every failed attempt and are followed by a close.
    if (data !== undefined) console.warn('call: a message was not sent', error);
  });
}

function newCall() {
  location.assign(`/apps/call/?room=${newCallId()}`);
}

/** A random UUID (version 4), also where crypto.randomUUID is missing (plain http). */
function newCallId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// --- local media ---

// Asks for camera and microphone; on a missing device, for what there is.
// A refusal or a missing device is shown and the call goes on without.
async function startMedia() {
  state.media = 'pending';
  if (!navigator.mediaDevices?.getUserMedia) {
    state.media = 'unavailable';
    setNotice('media', 'This page cannot use a camera or microphone here: browsers allow them only over https (or on localhost). You can still see and hear the others.');
    return;
  }
  const attempts = [
    [{ audio: true, video: true }, 'ok'],
    [{ audio: true }, 'audio-only'],
    [{ video: true }, 'video-only'],
  ];
  for (const [constraints, outcome] of attempts) {
    try {
      localStream = await navigator.mediaDevices.getUserMedia(constraints);
      state.media = outcome;
      if (outcome === 'audio-only') setNotice('media', 'No camera was found: the others will hear you but not see you.');
      if (outcome === 'video-only') setNotice('media', 'No microphone was found: the others will see you but not hear you.');
      break;
    } catch (error) {
      if (error.name === 'NotAllowedError' || error.name === 'SecurityError') {
        state.media = 'refused';
        setNotice('media', 'Camera and microphone access was refused, so the others can neither see nor hear you. Allow them in the browser\'s site settings and reload to take part; you can still see and hear the others.');
        break;
      }
      if (error.name !== 'NotFoundError' && error.name !== 'OverconstrainedError') {
        state.media = 'unavailable';
        setNotice('media', `The camera or microphone could not be started (${error.name}: ${error.message}). Is another program using it?`);
        break;
      }
      state.media = 'unavailable';
    }
  }
  if (state.media === 'unavailable' && !view.notices.querySelector('[data-kind="media"]')) {
    setNotice('media', 'No camera or microphone was found: you can still see and hear the others.');
  }
  const audio = localStream.getAudioTracks()[0];
  const video = localStream.getVideoTracks()[0];
  state.muted = !audio;
  state.cameraOff = !video;
  view.mute.disabled = !audio;
  // The camera button stays usable without a camera track only after a
  // refusal or a missing camera: turning it on asks again.
  updateLocalControls();
}

function showLocal() {
  // A video element given a stream without a video track never has a frame
  // to show, and holds up the page's load event while it waits for one.
  if (localStream.getVideoTracks().length > 0) {
    view.localVideo.srcObject = localStream;
    view.localVideo.play().catch(() => {});
  }
  updateLocalControls();
}

function updateLocalControls() {
  view.localTile.dataset.muted = String(state.muted);
  view.localTile.dataset.cameraOff = String(state.cameraOff);
  view.localTile.querySelector('.placeholder').textContent = initials(state.name || 'You');
  view.mute.textContent = state.muted ? 'Unmute' : 'Mute';
  view.mute.setAttribute('aria-pressed', String(state.muted));
  view.camera.textContent = state.cameraOff ? 'Turn camera on' : 'Turn camera off';
  view.camera.setAttribute('aria-pressed', String(state.cameraOff));
}

view.mute.addEventListener('click', () => {
  const audio = localStream.getAudioTracks()[0];
  if (!audio) return;
  state.muted = !state.muted;
  audio.enabled = !state.muted;
  updateLocalControls();
  sendState();
});

view.camera.addEventListener('click', async () => {
  view.camera.disabled = true;
  try {
    if (state.cameraOff) await cameraOn();
    else cameraOff();
  } finally {
    view.camera.disabled = false;
    updateLocalControls();
    sendState();
  }
});

// The camera is released (its light goes off); the peers keep the sender
// with no track, ready for the next one.
function cameraOff() {
  for (const track of localStream.getVideoTracks()) {
    track.stop();
    localStream.removeTrack(track);
  }
  for (const remote of remotes.values()) remote.videoSender?.replaceTrack(null).catch(() => {});
  state.cameraOff = true;
}

async function cameraOn() {
  let track;
  try {
    track = (await navigator.mediaDevices.getUserMedia({ video: true })).getVideoTracks()[0];
  } catch (error) {
    setNotice('media', error.name === 'NotAllowedError'
      ? 'Camera access was refused. Allow it in the browser\'s site settings, then try again.'
      : `The camera could not be started (${error.name}).`);
    return;
  }
  clearNotice('media');
  localStream.addTrack(track);
  view.localVideo.srcObject = localStream;
  view.localVideo.play().catch(() => {});
  state.cameraOff = false;
  for (const remote of remotes.values()) {
    if (remote.videoSender) {
      await remote.videoSender.replaceTrack(track).catch((error) => console.warn('call: replaceTrack', error));
    } else if (remote.tracksAdded) {
      // This page never sent video to that peer: a new track, negotiated.
      remote.videoSender = remote.pc.addTrack(track, localStream);
    }
  }
}

view.name.addEventListener('change', () => {
  state.name = view.name.value.trim();
  saveName(state.name);
  updateLocalControls();
  if (room && state.me) room.sendJson({ type: 'name', name: state.name });
});

view.leave.addEventListener('click', () => {
  state.left = true;
  room?.close(1000, 'left the call');
  endCall();
  showView('left');
});

view.copyLink.addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText(view.link.value);
    view.copied.textContent = 'Link copied.';
  } catch {
    // No clipboard access (plain http, or refused): select it to copy by hand.
    view.link.select();
    view.copied.textContent = 'Press Ctrl+C (⌘C) to copy the selected link.';
  }
});

closeWhenLeaving(() => {
  state.left = true;
  room?.close(1000, 'page closed');
  endCall();
});

// --- server messages ---

async function handle(msg) {
  switch (msg.type) {
    case 'joined': return onJoined(msg);
    case 'peer-joined': return addRemote(msg.peer, true);
    case 'peer-left': return removeRemote(String(msg.id));
    case 'peer-state': return updateRemote(msg.peer);
    case 'signal': return onSignal(String(msg.from), msg.data);
    case 'error': return onError(msg);
    default:
      console.warn('call: unknown message type', msg.type);
  }
}

function onJoined(msg) {
  // A new id: whatever this page had with the others belongs to the old one.
  for (const id of [...remotes.keys()]) removeRemote(id);
  clearNotice('reconnecting');
  state.me = String(msg.id);
  state.ice = Array.isArray(msg.ice?.iceServers) ? msg.ice.iceServers : [];
  state.limits = msg.limits ?? null;
  if (Number.isInteger(state.limits?.maxNameLength)) view.name.maxLength = state.limits.maxNameLength;
  view.localTile.dataset.peer = state.me;
  if (state.name) room.sendJson({ type: 'name', name: state.name });
  sendState();
  for (const peer of Array.isArray(msg.peers) ? msg.peers : []) addRemote(peer, false);
}

function onError(msg) {
  const code = String(msg.code ?? 'error');
  const text = String(msg.message ?? code);
  if (code === 'room_full') {
    state.full = true;
    setNotice('full', `${text[0].toUpperCase()}${text.slice(1)}. Try again when someone has left, or start a new call.`);
    endCall();
    $('left-title').textContent = 'This call is full';
    $('left-text').textContent = 'Only so many people fit in one call, since each sends video to every other.';
    $('rejoin').textContent = 'Try again';
    showView('left');
  } else if (code === 'unknown_target' && typeof msg.to === 'string') {
    // That peer left while this page was still talking to it.
    removeRemote(msg.to);
  } else {
    console.warn(`call: the server refused a message: ${code}: ${text}`);
  }
}

function sendState() {
  if (room && state.me) room.sendJson({ type: 'state', muted: state.muted, cameraOff: state.cameraOff });
}

function sendSignal(to, data) {
  room?.sendJson({ type: 'signal', to, data });
}

// --- peer connections ---

// A peer connection to `peer`. The side that was there first (`offers`)
// adds its tracks, or asks to receive when it has none, and so makes the
// first offer; the newcomer's tracks wait for that offer.
function addRemote(peer, offers) {
  if (!peer || typeof peer.id !== 'string' || peer.id === state.me) return;
  if (remotes.has(peer.id)) return updateRemote(peer);
  const pc = new RTCPeerConnection({ iceServers: state.ice, iceTransportPolicy: relayOnly ? 'relay' : 'all' });
  const remote = {
    id: peer.id,
    name: '',
    muted: false,
    cameraOff: false,
    pc,
    // Both sides of a pair compute the same roles.
    polite: state.me < peer.id,
    makingOffer: false,
    ignoreOffer: false,
    candidateErrors: new Set(), // what TURN servers answered, once each
    tracksAdded: false,
    videoSender: null,
    tile: remoteTile(peer.id),
    timer: null,
    offerTimer: null,
  };
  remotes.set(peer.id, remote);
  updateRemote(peer);

  if (offers) {
    addTracks(remote);
    for (const kind of ['audio', 'video']) {
      if (localStream.getTracks().every((t) => t.kind !== kind)) pc.addTransceiver(kind, { direction: 'recvonly' });
    }
  } else {
    remote.offerTimer = setTimeout(() => addTracks(remote), OFFER_WAIT_MS);
  }
  pc.onnegotiationneeded = async () => {
    try {
      remote.makingOffer = true;
      await pc.setLocalDescription();
      sendSignal(remote.id, { description: pc.localDescription });
    } catch (error) {
      console.warn('call: making an offer', error);
    } finally {
      remote.makingOffer = false;
    }
  };
  pc.onicecandidate = ({ candidate }) => {
    if (candidate) sendSignal(remote.id, { candidate });
  };
  pc.onicecandidateerror = (event) => {
    // A TURN server refusing the credentials says 401 here.
    if (/^turns?:/.test(event.url ?? '')) remote.candidateErrors.add(`${event.url}: ${event.errorCode} ${String(event.errorText).replace(/\.$/, '')}`);
  };
  pc.ontrack = ({ track, streams }) => {
    const stream = streams[0] ?? new MediaStream([track]);
    const video = remote.tile.querySelector('video');
    if (video.srcObject !== stream) video.srcObject = stream;
    video.play().catch((error) => {
      // Refused by the autoplay policy (no click on this page yet, no camera
      // of its own): one click starts it. An AbortError only means a later
      // track interrupted this call, and that one plays.
      if (error.name === 'NotAllowedError') remote.tile.dataset.needsClick = 'true';
    });
  };
  pc.onconnectionstatechange = () => showConnection(remote);
  showConnection(remote);
}

// Sends this page's tracks to `remote` (once). Before an offer has been
// answered this makes the first offer; while answering one, addTrack takes
// the transceivers the offer made, and the answer carries the tracks.
function addTracks(remote) {
  clearTimeout(remote.offerTimer);
  if (remote.tracksAdded || remotes.get(remote.id) !== remote) return;
  remote.tracksAdded = true;
  for (const track of localStream.getTracks()) {
    const sender = remote.pc.addTrack(track, localStream);
    if (track.kind === 'video') remote.videoSender = sender;
  }
}

function updateRemote(peer) {
  const remote = peer && remotes.get(peer.id);
  if (!remote) return;
  remote.name = typeof peer.name === 'string' ? peer.name : '';
  remote.muted = Boolean(peer.muted);
  remote.cameraOff = Boolean(peer.cameraOff);
  const tile = remote.tile;
  tile.dataset.muted = String(remote.muted);
  tile.dataset.cameraOff = String(remote.cameraOff);
  const shown = remote.name || `Guest ${remote.id.slice(0, 4)}`;
  tile.querySelector('.name').textContent = shown;
  tile.querySelector('.placeholder').textContent = initials(shown);
  tile.setAttribute('aria-label', shown);
}

function removeRemote(id) {
  const remote = remotes.get(id);
  if (!remote) return;
  remotes.delete(id);
  clearTimeout(remote.timer);
  clearTimeout(remote.offerTimer);
  remote.pc.onconnectionstatechange = null;
  remote.pc.close();
  remote.tile.remove();
  clearNotice(`connect-${id}`);
}

// Handles a signal from `from` with the perfect-negotiation rules.
async function onSignal(from, data) {
  const remote = remotes.get(from);
  if (!remote || !data || typeof data !== 'object') return;
  const pc = remote.pc;
  if (data.description) {
    const description = data.description;
    const collision = description.type === 'offer' && (remote.makingOffer || pc.signalingState !== 'stable');
    remote.ignoreOffer = !remote.polite && collision;
    if (remote.ignoreOffer) return;
    // A polite peer's own offer is rolled back implicitly.
    await pc.setRemoteDescription(description);
    if (description.type === 'offer') {
      addTracks(remote);
      await pc.setLocalDescription();
      sendSignal(remote.id, { description: pc.localDescription });
    }
  } else if (data.candidate) {
    try {
      await pc.addIceCandidate(data.candidate);
    } catch (error) {
      // Candidates of an offer this page ignored fail; they do not matter.
      if (!remote.ignoreOffer) console.warn('call: a candidate was refused', error);
    }
  }
}

const CONNECTION_TEXT = {
  new: 'connecting…',
  connecting: 'connecting…',
  connected: 'connected',
  disconnected: 'connection interrupted…',
  failed: 'could not connect',
  closed: 'closed',
};

function showConnection(remote) {
  const pcState = remote.pc.connectionState;
  remote.tile.dataset.state = pcState;
  remote.tile.querySelector('.conn').textContent = CONNECTION_TEXT[pcState] ?? pcState;
  clearTimeout(remote.timer);
  if (pcState === 'connected') {
    clearNotice(`connect-${remote.id}`);
  } else if (pcState === 'failed') {
    cannotConnect(remote);
    // A new attempt with fresh ICE, renegotiated like any other change;
    // one side asks, so the two restarts do not collide.
    if (!remote.polite) remote.pc.restartIce();
  } else {
    remote.timer = setTimeout(() => cannotConnect(remote), CONNECT_TIMEOUT_MS);
  }
}

function cannotConnect(remote) {
  if (remotes.get(remote.id) !== remote) return;
  remote.tile.dataset.state = 'failed';
  remote.tile.querySelector('.conn').textContent = CONNECTION_TEXT.failed;
  const name = remote.name || `Guest ${remote.id.slice(0, 4)}`;
  const turn = remote.candidateErrors.size > 0 ? ` The TURN server said: ${[...remote.candidateErrors].join('; ')}.` : '';
  const hint = relayOnly ? ' This page uses TURN relays only (?relay).' : ' A network between you may block direct connections and need a TURN server.';
  setNotice(`connect-${remote.id}`, `Could not connect to ${name}.${turn}${hint}`);
}

function markRemotesStale() {
  for (const remote of remotes.values()) remote.tile.dataset.stale = 'true';
}

// Closes every peer connection and releases the camera and microphone.
function endCall() {
  for (const id of [...remotes.keys()]) removeRemote(id);
  for (const track of localStream.getTracks()) track.stop();
  view.localVideo.srcObject = null;
  state.me = null;
}

// --- rendering ---

function remoteTile(id) {
  const tile = el('figure', 'tile remote');
  tile.dataset.peer = id;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  const caption = el('figcaption');
  caption.append(
    el('span', 'name'),
    badge('mic-off', 'muted', 'microphone off'),
    badge('cam-off', 'camera off', 'camera off'),
    el('span', 'conn'),
  );
  tile.append(video, el('div', 'placeholder'), caption);
  video.addEventListener('playing', () => { delete tile.dataset.needsClick; });
  // A browser that refused to start playback with sound needs one click.
  tile.addEventListener('click', () => {
    if (tile.dataset.needsClick) video.play().then(() => { delete tile.dataset.needsClick; }).catch(() => {});
  });
  view.tiles.append(tile);
  return tile;
}

function badge(kind, text, title) {
  const span = el('span', `badge ${kind}`, text);
  span.title = title;
  return span;
}

function initials(name) {
  const words = name.split(/\s+/).filter(Boolean);
  return words.slice(0, 2).map((w) => [...w][0].toUpperCase()).join('') || '?';
}

function showView(which) {
  document.body.dataset.view = which;
  view.lobby.hidden = which !== 'lobby';
  view.inCall.hidden = which !== 'in-call';
  view.left.hidden = which !== 'left';
  if (which !== 'in-call') setStatus('closed', 'not connected');
}

function setStatus(status, text) {
  state.status = status;
  showStatus(view.status, status, { text, controls: [view.name] });
}

/** Shows a notice of `kind`, replacing the one of that kind shown before. */
function setNotice(kind, text) {
  let li = view.notices.querySelector(`[data-kind="${CSS.escape(kind)}"]`);
  if (!li) {
    li = el('li', 'notice');
    li.dataset.kind = kind;
    li.setAttribute('role', 'alert');
    view.notices.append(li);
  }
  li.textContent = text;
}

function clearNotice(kind) {
  view.notices.querySelector(`[data-kind="${CSS.escape(kind)}"]`)?.remove();
}

function loadName() {
  try {
    return localStorage.getItem(NAME_KEY) ?? '';
  } catch {
    return '';
  }
}

function saveName(name) {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // Storage may be full or disabled; the name is just not remembered.
  }
}

/** Frames of `id`'s video decoded so far (from the peer connection's stats). */
async function framesDecoded(id) {
  const remote = remotes.get(id);
  if (!remote) return null;
  let frames = 0;
  (await remote.pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0;
  });
  return frames;
}

/** The kinds of the local and remote candidates of `id`'s selected pair. */
async function selectedPair(id) {
  const remote = remotes.get(id);
  if (!remote) return null;
  const stats = await remote.pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const far = stats.get(pair.remoteCandidateId);
  return { local: local?.candidateType ?? null, remote: far?.candidateType ?? null, state: pair.state };
}

window.call = { state, remotes, get room() { return room; }, framesDecoded, selectedPair };
