/*
 * A TFTP transfer socket without node:dgram's per-datagram cost (issue 14).
 *
 * node:dgram allocates 64 KiB and an rinfo object per received datagram and a SendWrap per send;
 * on a lock-step transfer that is most of the server's CPU per block. This socket is a plain
 * non-blocking UDP descriptor watched by a uv_poll on the calling thread's own loop (main thread
 * or transfer thread): an ACK reaches JavaScript as one call with its block number, a DATA block
 * leaves with one sendmsg gathering a 4-byte header and a view of the file's bytes. Everything
 * else (ERROR, garbage, socket errors) is handed up as is. The transfer logic stays in
 * transfer-machine.ts; this file only moves datagrams.
 *
 * JavaScript API (src/native-socket.ts types it):
 *   open(address, onEvent) -> [handle, port]     bind address:0 (then SO_REUSEADDR), start polling
 *   connect(handle, address, port) -> errno      filter receives to the client, send without address
 *   sendData(handle, block, bytes) -> errno      DATA header + bytes, one datagram
 *   send(handle, bytes) -> errno                 any other packet (OACK, ERROR)
 *   awaitWritable(handle)                        after EAGAIN: one WRITABLE event once it can send
 *   close(handle)                                idempotent; the descriptor closes on the next tick
 * onEvent(kind, value): kind 0 = ACK (value: block), 1 = other datagram (value: Buffer copy),
 * 2 = receive error (value: errno), 3 = writable again (value: undefined).
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Largest datagram read whole; TFTP packets a server receives are far smaller. */
#define RECEIVE_BUFFER 2048

enum event_kind { EVENT_ACK = 0, EVENT_PACKET = 1, EVENT_ERROR = 2, EVENT_WRITABLE = 3 };

typedef struct transfer_socket {
  uv_poll_t poll; /* first: the poll callback's handle is the socket */
  int fd;
  napi_env env;
  napi_ref on_event;
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup_hook;
  int watched;         /* uv_poll initialised: libuv must close it */
  int want_writable;   /* awaitWritable() called, WRITABLE not yet emitted */
  int closed;          /* uv_close called */
  int handle_released; /* the JavaScript External was collected */
} transfer_socket;

#define THROW_IF(cond, msg)                      \
  do {                                           \
    if (cond) {                                  \
      napi_throw_error(env, "ERR_TFTP_NATIVE", msg); \
      return NULL;                               \
    }                                            \
  } while (0)

static void free_socket(transfer_socket *sock) {
  free(sock);
}

static void on_closed(uv_handle_t *handle) {
  transfer_socket *sock = (transfer_socket *)handle;
  if (sock->fd >= 0) close(sock->fd);
  sock->fd = -1;
  if (sock->on_event) napi_delete_reference(sock->env, sock->on_event);
  sock->on_event = NULL;
  if (sock->async_context) napi_async_destroy(sock->env, sock->async_context);
  sock->async_context = NULL;
  /* Last: the hook holds the environment alive while the calls above still use it. */
  if (sock->cleanup_hook) {
    napi_remove_async_cleanup_hook(sock->cleanup_hook);
    sock->cleanup_hook = NULL;
  }
  if (sock->handle_released) free_socket(sock);
}

static void start_close(transfer_socket *sock) {
  if (sock->closed) return;
  sock->closed = 1;
  if (sock->watched) {
    uv_poll_stop(&sock->poll);
    uv_close((uv_handle_t *)&sock->poll, on_closed);
  } else {
    /* never polled: nothing for libuv to release */
    on_closed((uv_handle_t *)&sock->poll);
  }
}

/* The environment (main thread or worker) is going away with the socket still open. */
static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *data) {
  (void)handle;
  start_close((transfer_socket *)data);
}

static void on_handle_finalized(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  transfer_socket *sock = data;
  sock->handle_released = 1;
  if (sock->closed && sock->fd < 0) free_socket(sock);
  else start_close(sock);
}

static void emit(transfer_socket *sock, napi_env env, int kind, napi_value value) {
  napi_value callback, argv[2];
  if (!sock->on_event || napi_get_reference_value(env, sock->on_event, &callback) != napi_ok || !callback) return;
  napi_create_int32(env, kind, &argv[0]);
  argv[1] = value;
  /* make_callback, not call_function: JavaScript may queue ticks and microtasks, drained on return.
   * Its `this` must be an object: the listener itself is one (it ignores `this`). */
  napi_status status = napi_make_callback(env, sock->async_context, callback, callback, 2, argv, NULL);
  if (status == napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
}

static void on_poll(uv_poll_t *handle, int status, int events);

static int watch(transfer_socket *sock) {
  return uv_poll_start(&sock->poll, UV_READABLE | (sock->want_writable ? UV_WRITABLE : 0), on_poll);
}

static void emit_int(transfer_socket *sock, napi_env env, int kind, int number) {
  napi_value value;
  if (napi_create_int32(env, number, &value) == napi_ok) emit(sock, env, kind, value);
}

/* One datagram per readable event: the poll is level-triggered, so anything still queued is
 * reported on the next loop turn. Reading on to EAGAIN would cost a lock-step transfer a second,
 * empty recv per block (its one ACK per wake-up). */
static void receive_one(transfer_socket *sock, napi_env env) {
  unsigned char buffer[RECEIVE_BUFFER];
  ssize_t n;
  do n = recv(sock->fd, buffer, sizeof buffer, MSG_TRUNC);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    int error = errno;
    /* ECONNREFUSED and the like are one-shot: report and poll on */
    if (error != EAGAIN && error != EWOULDBLOCK) emit_int(sock, env, EVENT_ERROR, error);
    return;
  }
  napi_value value;
  if (n >= 4 && buffer[0] == 0 && buffer[1] == 4) { /* padded ACKs count, as in packet.ts */
    if (napi_create_uint32(env, ((uint32_t)buffer[2] << 8) | buffer[3], &value) == napi_ok) emit(sock, env, EVENT_ACK, value);
    return;
  }
  /* Anything longer than the buffer arrives cut to it (MSG_TRUNC tells, the copy is bounded). */
  size_t length = (size_t)n < sizeof buffer ? (size_t)n : sizeof buffer;
  void *copy;
  if (napi_create_buffer_copy(env, length, buffer, &copy, &value) == napi_ok) emit(sock, env, EVENT_PACKET, value);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  transfer_socket *sock = (transfer_socket *)handle;
  napi_env env = sock->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (status < 0) {
    /* libuv reports a pending socket error (POLLERR: the client's ICMP port unreachable on a
     * connected socket) as UV_EBADF and stops the poll. Take the real error, which clears it, and
     * poll on: the retransmission timer decides whether the client is gone. An error that is not
     * there would only come back at once: then the poll stays stopped and the timer ends it. */
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(sock->fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0) error = 0;
    emit_int(sock, env, EVENT_ERROR, error != 0 ? error : -status);
    if (!sock->closed && error != 0) watch(sock);
  }
  if (!sock->closed && (events & UV_WRITABLE)) {
    sock->want_writable = 0;
    watch(sock);
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    emit(sock, env, EVENT_WRITABLE, undefined);
  }
  if (!sock->closed && (events & UV_READABLE)) receive_one(sock, env);
  napi_close_handle_scope(env, scope);
}

static transfer_socket *unwrap(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok) return NULL;
  return data;
}

/* The arguments of a call on a socket: exactly `count` of them, the handle first; NULL otherwise. */
static transfer_socket *socket_call(napi_env env, napi_callback_info info, size_t count, napi_value *argv) {
  size_t argc = count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != count) return NULL;
  return unwrap(env, argv[0]);
}

static int parse_ipv4(napi_env env, napi_value value, uint16_t port, struct sockaddr_in *out) {
  char text[64];
  size_t length;
  if (napi_get_value_string_utf8(env, value, text, sizeof text, &length) != napi_ok) return 0;
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons(port);
  return inet_pton(AF_INET, text, &out->sin_addr) == 1;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct sockaddr_in local;
  napi_valuetype listener = napi_undefined;
  if (argc == 2) napi_typeof(env, argv[1], &listener);
  THROW_IF(argc < 2 || !parse_ipv4(env, argv[0], 0, &local) || listener != napi_function,
           "open(address, onEvent): an IPv4 address and a function");

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  THROW_IF(fd < 0, strerror(errno));
  /* Bound first, SO_REUSEADDR after: Linux's choice of a free port counts a port as taken unless
   * both sockets carry the flag, so set before bind it could hand out another transfer's port.
   * The stranger twin, bound later with the flag, is checked against it at its own bind. */
  int one = 1;
  if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
    int error = errno;
    close(fd);
    THROW_IF(1, strerror(error));
  }
  socklen_t local_length = sizeof local;
  getsockname(fd, (struct sockaddr *)&local, &local_length);

  transfer_socket *sock = calloc(1, sizeof *sock);
  if (!sock) {
    close(fd);
    THROW_IF(1, "out of memory");
  }
  sock->fd = fd;
  sock->env = env;
  napi_value name, handle, port, result;
  napi_create_reference(env, argv[1], 1, &sock->on_event);
  napi_create_string_utf8(env, "TftpTransferSocket", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &sock->async_context);
  napi_add_async_cleanup_hook(env, on_env_cleanup, sock, &sock->cleanup_hook);
  napi_create_external(env, sock, on_handle_finalized, NULL, &handle);

  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) == napi_ok && uv_poll_init(loop, &sock->poll, fd) == 0) sock->watched = 1;
  if (!sock->watched || watch(sock) != 0) {
    start_close(sock);
    THROW_IF(1, "cannot watch the socket");
  }

  napi_create_uint32(env, ntohs(local.sin_port), &port);
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, handle);
  napi_set_element(env, result, 1, port);
  return result;
}

static napi_value errno_value(napi_env env, int error) {
  napi_value value;
  napi_create_int32(env, error, &value);
  return value;
}

static napi_value js_connect(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  transfer_socket *sock = socket_call(env, info, 3, argv);
  uint32_t port = 0;
  struct sockaddr_in peer;
  THROW_IF(!sock || napi_get_value_uint32(env, argv[2], &port) != napi_ok || port > 65535 || !parse_ipv4(env, argv[1], (uint16_t)port, &peer),
           "connect(handle, address, port)");
  if (sock->closed) return errno_value(env, EBADF);
  if (connect(sock->fd, (struct sockaddr *)&peer, sizeof peer) < 0) return errno_value(env, errno);
  /* connect() filters what arrives from now on, not what is queued: whatever came before it is
   * not the client's (it has not learnt this port yet), so it is dropped unread. */
  unsigned char discard[RECEIVE_BUFFER];
  while (recv(sock->fd, discard, sizeof discard, MSG_DONTWAIT) >= 0 || errno == EINTR) {
  }
  return errno_value(env, 0);
}

/* 0 or the errno; EAGAIN (socket buffer full) leaves the datagram unsent: the caller queues it and
 * waits for awaitWritable's event, as libuv does for node:dgram. */
static int send_iov(transfer_socket *sock, struct iovec *iov, int count) {
  struct msghdr message = {.msg_iov = iov, .msg_iovlen = count};
  for (;;) {
    if (sendmsg(sock->fd, &message, MSG_NOSIGNAL) >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

static int typed_bytes(napi_env env, napi_value value, void **data, size_t *length) {
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) != napi_ok || type != napi_uint8_array) return 0;
  return 1;
}

static napi_value js_send_data(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  transfer_socket *sock = socket_call(env, info, 3, argv);
  uint32_t block = 0;
  void *data = NULL;
  size_t length = 0;
  THROW_IF(!sock || napi_get_value_uint32(env, argv[1], &block) != napi_ok || !typed_bytes(env, argv[2], &data, &length),
           "sendData(handle, block, bytes)");
  if (sock->closed) return errno_value(env, EBADF);
  unsigned char header[4] = {0, 3, (unsigned char)(block >> 8), (unsigned char)block};
  struct iovec iov[2] = {{header, 4}, {data, length}};
  return errno_value(env, send_iov(sock, iov, 2));
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  transfer_socket *sock = socket_call(env, info, 2, argv);
  void *data = NULL;
  size_t length = 0;
  THROW_IF(!sock || !typed_bytes(env, argv[1], &data, &length), "send(handle, bytes)");
  if (sock->closed) return errno_value(env, EBADF);
  struct iovec iov[1] = {{data, length}};
  return errno_value(env, send_iov(sock, iov, 1));
}

static napi_value js_await_writable(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  transfer_socket *sock = socket_call(env, info, 1, argv);
  THROW_IF(!sock, "awaitWritable(handle)");
  if (!sock->closed && !sock->want_writable) {
    sock->want_writable = 1;
    watch(sock);
  }
  return NULL;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  transfer_socket *sock = socket_call(env, info, 1, argv);
  THROW_IF(!sock, "close(handle)");
  start_close(sock);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor functions[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"connect", NULL, js_connect, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"sendData", NULL, js_send_data, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"awaitWritable", NULL, js_await_writable, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default_jsproperty, NULL},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  return exports;
}
