// The API page: rendered on the server from the OpenAPI document; only the header needs wiring here.
import { initHeader } from "./header.js";

initHeader({ onCleared: () => {} });
