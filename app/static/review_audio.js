// The review card's audio (components/keys.py appends this to review_keys.js, as one module): the key p plays or
// pauses the audio of the card on screen at the moment it is pressed, in the browser, without a round trip to the
// server. The card on screen is the one slot of the card component that is not hidden; a card that leaves the
// screen (decided, or dropped by the page) stops playing, so a p can never play a card no longer shown, and a p
// with no card on screen, or on a card without audio, plays nothing and says so.
// Installed once per page, when the module is first loaded; it acts only while a review card component is on it.

(function installReviewAudio() {
  if (window.__turnlensReviewAudio) return;
  window.__turnlensReviewAudio = true;

  function cards() {
    return document.querySelector(".tl-root .tl-cards");
  }

  function say(text) {
    const note = document.querySelector(".tl-root .tl-note");
    if (note) note.textContent = text;
  }

  function onKey(e) {
    if (e.key !== "p" && e.key !== "P") return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const box = cards();
    if (!box || !box.isConnected) return; // not the Review page: the key is not ours
    e.preventDefault();
    e.stopImmediatePropagation();
    if (e.repeat) return; // a held key toggles once
    const slot = [...box.children].find((c) => c.classList.contains("tl-slot") && !c.hidden);
    if (!slot) return say("Key ignored: no card on screen yet.");
    const audio = slot.querySelector("audio[data-tl-audio]");
    if (!audio) return say("This card has no audio to play.");
    say("");
    if (audio.paused) {
      audio.play().catch((err) => say(`The audio could not play (${err.name}).`));
    } else {
      audio.pause();
    }
  }

  // A slot hidden (its card left the screen) pauses its audio; a removed one is paused by the browser itself.
  const observer = new MutationObserver((records) => {
    for (const r of records) {
      if (r.target.hidden && r.target.classList && r.target.classList.contains("tl-slot")) {
        for (const a of r.target.querySelectorAll("audio")) a.pause();
      }
    }
  });
  observer.observe(document.documentElement, { subtree: true, attributes: true, attributeFilter: ["hidden"] });
  document.addEventListener("keydown", onKey, true);
})();
