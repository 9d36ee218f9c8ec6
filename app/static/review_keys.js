// The review card in the browser (components/keys.py mounts it): the card on screen and the next ones, already
// drawn and hidden, and the review keys. A key acts on the card on screen at the moment it is pressed: a decision
// shows the next card at once, and the event goes to the server carrying that card's id and decision id, with
// every earlier event the server has not acknowledged yet (Streamlit keeps only the newest trigger of a widget
// when reruns pile up, so each event is sent until acknowledged; the server handles each seq once).
// A decision by mouse on the card on screen shows the next card at once too.
// While events wait for the server, or a button was clicked, <html data-tl-busy> dims the buttons and the
// context below the card (they belong to the card before) and says "saving".
// Card HTML comes from the server already escaped (components/review_card.py); nothing here adds text from data.

const KEYS = { a: "accept", x: "reject", " ": "skip", c: "correct", Backspace: "undo" };
const MOVES_ON = new Set(["accept", "reject", "skip"]); // the next card shows at once; correct and undo wait
const HINTS = "a accept · x reject · space skip · c correct · backspace undo";

export default function (component) {
  const { data, parentElement: root, setTriggerValue } = component;
  // The script runs again on every run of the page (data changes); its state lives on the mount point.
  const s = root.__turnlens || (root.__turnlens = {
    client: Math.random().toString(36).slice(2) + Date.now().toString(36), // this page's events, numbered
    seq: 0, pending: [], decided: new Set(), waitFor: 0, clicked: false, slots: new Map(),
  });
  s.root = root;
  s.data = data;
  s.send = setTriggerValue;
  s.clicked = false; // a run came back: a button click has been answered
  if (data.client === s.client) {
    s.pending = s.pending.filter((e) => e.seq > data.acked);
    if (s.waitFor && data.acked >= s.waitFor) s.waitFor = 0;
  }
  const live = new Set(data.cards.map((c) => c.token));
  for (const token of s.decided) {
    if (!live.has(token) && !s.pending.some((e) => e.token === token)) s.decided.delete(token);
  }
  build(s);
  draw(s);
  install(s);
  return () => setTimeout(() => { if (!root.isConnected) uninstall(s); }, 0);
}

function build(s) {
  if (!s.cards) {
    // Into a box of our own: Streamlit keeps the component's <style> in the mount point too.
    const box = el("div", "tl-root");
    const bar = el("div", "tl-bar");
    bar.append(el("span", "tl-hints", HINTS), (s.note = el("span", "tl-note")), el("span", "tl-busy", "saving…"));
    s.cards = el("div", "tl-cards");
    s.wait = el("div", "tl-wait");
    s.wait.hidden = true;
    box.append(bar, s.cards, s.wait);
    s.root.append(box);
  }
  // Every card of the data drawn once, hidden until shown: showing the next card is flipping an attribute.
  const wanted = new Set();
  for (const card of s.data.cards) {
    wanted.add(card.token);
    if (!s.slots.has(card.token)) {
      const slot = el("div", "tl-slot");
      slot.hidden = true;
      slot.innerHTML = card.html; // escaped by the server
      s.cards.append(slot);
      s.slots.set(card.token, slot);
    }
  }
  for (const [token, slot] of s.slots) {
    if (!wanted.has(token)) { slot.remove(); s.slots.delete(token); }
  }
}

function shownCard(s) {
  return s.waitFor ? null : s.data.cards.find((c) => !s.decided.has(c.token)) || null;
}

function draw(s) {
  const card = shownCard(s);
  for (const [token, slot] of s.slots) slot.hidden = !(card && token === card.token);
  s.wait.hidden = !!card;
  s.wait.textContent = s.waitFor ? "Waiting for the page…" : "Saving… the next card is on its way.";
  const busy = s.pending.length > 0 || s.waitFor > 0 || s.clicked;
  document.documentElement.toggleAttribute("data-tl-busy", busy);
}

function note(s, text) {
  s.note.textContent = text;
}

function onKey(e) {
  const s = window.__turnlensReview;
  if (!s || !s.root.isConnected || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
  const verdict = KEYS[e.key.length === 1 ? e.key.toLowerCase() : e.key];
  if (!verdict) return;
  e.preventDefault(); // space would scroll; c is Streamlit's clear-cache key
  e.stopImmediatePropagation();
  if (e.repeat) return; // a held key decides one card, not a run of them
  if (s.data.read_only) return note(s, "Read-only mode: keys decide nothing.");
  const card = shownCard(s);
  const event = { seq: s.seq + 1, verdict, card: card ? card.id : null, token: card ? card.token : null };
  if (verdict === "undo") {
    const last = [...s.pending].reverse().find((p) => MOVES_ON.has(p.verdict));
    event.undo_of = last ? last.token : s.data.undo;
    if (!event.undo_of) return note(s, "Nothing to undo.");
    s.waitFor = event.seq;
  } else if (!card) {
    return note(s, "Key ignored: no card on screen yet.");
  } else if (verdict === "correct") {
    s.waitFor = event.seq;
  } else {
    s.decided.add(card.token);
  }
  note(s, "");
  s.seq = event.seq;
  s.pending.push(event);
  draw(s);
  // Sent once the next card is painted: the send starts Streamlit's own work on this page, which would hold the
  // paint back (the server takes far longer than a frame anyway).
  requestAnimationFrame(() => setTimeout(() => s.send("keys", { client: s.client, events: s.pending.slice() }), 0));
}

function onClick(e) {
  const s = window.__turnlensReview;
  if (!s || !s.root.isConnected || !e.target.closest) return;
  const button = e.target.closest("[class*='st-key-review_buttons'] button, [class*='st-key-review_editor'] button");
  if (!button || button.disabled) return;
  // The page's buttons are bound to the card the page drew (the first of the data); when that card is on screen,
  // a decision by mouse shows the next card at once too. Other buttons: busy until the page is back.
  const card = shownCard(s);
  const label = button.innerText.trim();
  if (["Accept", "Reject", "Skip"].includes(label) && card && card.token === s.data.cards[0].token) {
    s.decided.add(card.token);
  }
  s.clicked = true;
  draw(s);
}

function install(s) {
  window.__turnlensReview = s;
  if (!window.__turnlensReviewListeners) {
    // One pair of listeners for the page, capturing, so the keys reach the card before Streamlit's own.
    window.__turnlensReviewListeners = { keydown: onKey, click: onClick };
    for (const [type, fn] of Object.entries(window.__turnlensReviewListeners)) {
      document.addEventListener(type, fn, true);
    }
  }
}

function uninstall(s) {
  if (window.__turnlensReview !== s) return;
  for (const [type, fn] of Object.entries(window.__turnlensReviewListeners || {})) {
    document.removeEventListener(type, fn, true);
  }
  delete window.__turnlensReviewListeners;
  delete window.__turnlensReview;
  document.documentElement.removeAttribute("data-tl-busy");
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  node.className = cls;
  if (text) node.textContent = text;
  return node;
}
