// A Server-Sent Events stream that keeps itself open: the browser reconnects a dropped stream on its own,
// and this also reopens one the browser gave up on (a 503 when the server has too many streams).

const GIVE_UP_DELAY_MS = 2000;
const MAX_DELAY_MS = 30000;

export class LiveStream {
  /**
   * @param {string} url
   * @param {Object<string, function(object)>} handlers  event name -> handler of its parsed JSON data
   * @param {function(string)} onStatus  called with "connecting", "live", "reconnecting" or "closed"
   */
  constructor(url, handlers, onStatus = () => {}) {
    this.url = url;
    this.handlers = handlers;
    this.onStatus = onStatus;
    this.source = null;
    this.timer = null;
    this.delay = GIVE_UP_DELAY_MS;
  }

  open() {
    this.close();
    this.onStatus("connecting");
    const source = new EventSource(this.url);
    this.source = source;
    source.addEventListener("open", () => {
      this.delay = GIVE_UP_DELAY_MS;
      this.onStatus("live");
    });
    source.addEventListener("error", () => {
      if (this.source !== source) return;
      this.onStatus("reconnecting");
      if (source.readyState === EventSource.CLOSED) {
        // The browser will not retry after an error answer; try again later, backing off.
        this.timer = setTimeout(() => this.open(), this.delay);
        this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
      }
    });
    for (const [name, handler] of Object.entries(this.handlers)) {
      source.addEventListener(name, (event) => {
        if (this.source === source) handler(JSON.parse(event.data));
      });
    }
  }

  /** Stop listening for good (until open() is called again). */
  close() {
    clearTimeout(this.timer);
    if (this.source) {
      this.source.close();
      this.source = null;
      this.onStatus("closed");
    }
  }
}
