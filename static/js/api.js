// fetch() wrappers that throw on any non-2xx answer with the server's own message.

export class ApiError extends Error {
  /** details: what the server's error adds to its code and message (e.g. job_id, or a file's columns). */
  constructor(message, { status, code, details = {} } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** Send a request and return the JSON body; throw an ApiError carrying the server's message on failure. */
export async function request(url, { method = "GET", json, form } = {}) {
  const options = { method, headers: { Accept: "application/json" } };
  if (json !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(json);
  } else if (form !== undefined) {
    options.body = form;
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch {
    throw new ApiError("The server could not be reached. Check the connection and try again.");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = body && body.error;
    const message = (error && error.message) || `The server answered ${response.status} ${response.statusText}.`;
    throw new ApiError(message, { status: response.status, code: error && error.code, details: (error && error.details) || {} });
  }
  return body;
}

/** Build a URL with query parameters, leaving out the empty ones. */
export function withQuery(url, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(name, value);
  }
  const text = query.toString();
  return text ? `${url}?${text}` : url;
}
