/**
 * Every error the project throws on purpose extends IotTofuError: callers branch on the stable
 * `code` string, never on message text, and the original failure stays reachable through `cause`.
 */
export class IotTofuError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A wire-format decoder met bytes it cannot accept; `offset` is where in the input it stopped. */
export class DecodeError extends IotTofuError {
  readonly offset: number;

  constructor(message: string, offset: number, options?: { cause?: unknown }) {
    super('DECODE_ERROR', `${message} (at byte ${offset})`, options);
    this.offset = offset;
  }
}
