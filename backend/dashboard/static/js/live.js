// The one module that owns the events WebSocket. The token goes as the first message (never in
// the URL); the server answers {"type": "ready"}, then one JSON message per event. When the socket
// closes it reconnects with a growing pause; after a reconnect, or on {"type": "resync"}, the
// page refetches what it shows, since events may have been missed meanwhile.

const EVENTS_PATH = "/api/v1/admin/data-collection/events";
const RECONNECT_SECONDS = [1, 2, 5, 10, 15];
const POLICY_VIOLATION = 1008; // the server refused the token

/**
 * startLive({token, onEvent, onState, onRefused}) -> stop()
 * onState(state, detail): "connecting", "live", or "offline" with {retryInSeconds}.
 * onEvent(event): every event, and {type: "resync"} when the page should refetch.
 * onRefused(): the server closed with 1008 (token refused); reconnecting goes on unless stopped.
 */
export function startLive({ token, onEvent, onState, onRefused }) {
  let socket = null;
  let attempt = 0;
  let timer = null;
  let stopped = false;
  let missedEvents = false;

  function connect() {
    if (stopped) return;
    onState("connecting", {});
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}${EVENTS_PATH}`);
    socket.addEventListener("open", () => socket.send(JSON.stringify({ token })));
    socket.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event.type === "ready") {
        attempt = 0;
        onState("live", {});
        if (missedEvents) onEvent({ type: "resync" }); // back after a break: refetch what we show
        missedEvents = false;
        return;
      }
      onEvent(event);
    });
    socket.addEventListener("close", (close) => {
      socket = null;
      if (stopped) return;
      if (close.code === POLICY_VIOLATION) onRefused();
      if (stopped) return;
      const pause = RECONNECT_SECONDS[Math.min(attempt, RECONNECT_SECONDS.length - 1)];
      attempt += 1;
      missedEvents = true;
      onState("offline", { retryInSeconds: pause });
      timer = setTimeout(connect, pause * 1000);
    });
  }

  connect();
  return function stop() {
    stopped = true;
    clearTimeout(timer);
    if (socket) socket.close(1000, "leaving");
  };
}
