// tcnp's native primitives, the few syscalls Node does not expose:
//   setns(fd, nstype)          switch the calling (main) thread's namespace
//   flock(fd, op)              advisory lock; returns 0, or the errno (EWOULDBLOCK with LOCK_NB)
//   sendGarp(ifindex, mac, ip, inThread?) broadcast one gratuitous ARP request from an interface
//                              of the calling thread's current netns (AF_PACKET). Closing a packet
//                              socket waits for an RCU grace period (~15 ms), so the send and the
//                              close happen in a detached grandchild that holds none of our fds,
//                              or (inThread, a long-lived process) in a detached thread.
//   nlOpen()                   an rtnetlink socket in the calling thread's current netns (fd)
//   nlTransact(fd, msg, seq)   send one request and read its whole answer: every datagram up to
//                              the one holding the request's ACK/error or the end of its dump.
//                              The kernel answers rtnetlink requests while handling the send, so
//                              this is two or three syscalls, not a trip through the event loop.
// Every function runs synchronously on the calling thread, which is what makes setns safe to use
// from Node: the caller switches, does synchronous work, and switches back before yielding.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/ethernet.h>
#include <net/if_arp.h>
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *errno_name(int e) {
  const char *n = strerrorname_np(e);
  return n != NULL ? n : "EIO";
}

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[200];
  snprintf(msg, sizeof msg, "%s failed: %s", what, strerror(e));
  napi_throw_error(env, errno_name(e), msg);
  return NULL;
}

static int int_arg(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static napi_value Setns(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1, nstype = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !int_arg(env, argv[0], &fd) || !int_arg(env, argv[1], &nstype)) {
    napi_throw_type_error(env, NULL, "setns(fd: number, nstype: number)");
    return NULL;
  }
  if (setns(fd, nstype) != 0) return throw_errno(env, "setns", errno);
  return NULL;
}

static napi_value Flock(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  int32_t fd = -1, op = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !int_arg(env, argv[0], &fd) || !int_arg(env, argv[1], &op)) {
    napi_throw_type_error(env, NULL, "flock(fd: number, op: number)");
    return NULL;
  }
  int rc = flock(fd, op);
  napi_create_int32(env, rc == 0 ? 0 : errno, &out);
  return out;
}

// The credentials of a unix socket's peer (SO_PEERCRED): [pid, uid, gid]. The pid is 0 when the
// peer is in a PID namespace this process cannot see.
static napi_value PeerCred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], arr, v;
  int32_t fd = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !int_arg(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "peerCred(fd: number)");
    return NULL;
  }
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
  napi_create_array_with_length(env, 3, &arr);
  napi_create_int32(env, cred.pid, &v);
  napi_set_element(env, arr, 0, v);
  napi_create_uint32(env, cred.uid, &v);
  napi_set_element(env, arr, 1, v);
  napi_create_uint32(env, cred.gid, &v);
  napi_set_element(env, arr, 2, v);
  return arr;
}

static int get_bytes(napi_env env, napi_value v, unsigned char *dst, size_t want) {
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok || len != want) return 0;
  memcpy(dst, data, want);
  return 1;
}

struct garp {
  unsigned char pkt[28];
  struct sockaddr_ll to;
};

static void garp_send(const struct garp *g) {
  int s = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return;
  sendto(s, g->pkt, sizeof g->pkt, 0, (const struct sockaddr *)&g->to, sizeof g->to);
  close(s);
}

// A thread made by the calling thread starts in its network namespace: it sends and waits out the
// close, the caller does not.
static void *garp_thread(void *p) {
  garp_send(p);
  free(p);
  return NULL;
}

static napi_value SendGarp(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t ifindex = 0;
  bool in_thread = false;
  unsigned char mac[6], ip[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !int_arg(env, argv[0], &ifindex) || !get_bytes(env, argv[1], mac, 6) ||
      !get_bytes(env, argv[2], ip, 4) || (argc > 3 && napi_get_value_bool(env, argv[3], &in_thread) != napi_ok)) {
    napi_throw_type_error(env, NULL, "sendGarp(ifindex: number, mac: Buffer(6), ip: Buffer(4), inThread?: boolean)");
    return NULL;
  }
  struct garp *g = calloc(1, sizeof *g);
  if (g == NULL) return throw_errno(env, "sendGarp", ENOMEM);
  // ARP request, sender = target = our address: the form Linux's arp_notify and arping -U send.
  struct arphdr *h = (struct arphdr *)g->pkt;
  h->ar_hrd = htons(ARPHRD_ETHER);
  h->ar_pro = htons(ETH_P_IP);
  h->ar_hln = 6;
  h->ar_pln = 4;
  h->ar_op = htons(ARPOP_REQUEST);
  memcpy(g->pkt + 8, mac, 6);
  memcpy(g->pkt + 14, ip, 4);
  memset(g->pkt + 18, 0, 6);
  memcpy(g->pkt + 24, ip, 4);
  g->to.sll_family = AF_PACKET;
  g->to.sll_protocol = htons(ETH_P_ARP);
  g->to.sll_ifindex = ifindex;
  g->to.sll_halen = 6;
  memset(g->to.sll_addr, 0xff, 6);
  if (in_thread) {
    // A long-lived process (the agent): a detached thread, ~50 µs here against ~8 ms for a fork.
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, garp_thread, g);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      free(g);
      return throw_errno(env, "pthread_create", rc);
    }
    return NULL;
  }
  // A plugin process exits right after: its exit must not wait for the close, so a detached
  // grandchild that holds none of our fds sends. Everything it does is async-signal-safe.
  pid_t child = fork();
  if (child < 0) {
    free(g);
    return throw_errno(env, "fork", errno);
  }
  if (child == 0) {
    if (fork() != 0) _exit(0);
    // The grandchild: let go of stdio at once so the runtime reading our stdout is not held up.
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) { dup2(devnull, 0); dup2(devnull, 1); dup2(devnull, 2); }
    garp_send(g);
    _exit(0);
  }
  free(g);
  int status;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
  return NULL;
}

static napi_value NlOpen(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return throw_errno(env, "socket(AF_NETLINK)", errno);
  // A request never waits longer than this for its answer (the RTNL lock held elsewhere).
  struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
  int rcvbuf = 1 << 20, one = 1;
  struct sockaddr_nl self;
  memset(&self, 0, sizeof self);
  self.nl_family = AF_NETLINK;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0 ||
      setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one) != 0 ||
      bind(fd, (struct sockaddr *)&self, sizeof self) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "set up the netlink socket", e);
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

static napi_value NlTransact(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], arr;
  int32_t fd = -1;
  uint32_t seq = 0;
  void *msg;
  size_t len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !int_arg(env, argv[0], &fd) || napi_get_buffer_info(env, argv[1], &msg, &len) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &seq) != napi_ok) {
    napi_throw_type_error(env, NULL, "nlTransact(fd: number, msg: Buffer, seq: number)");
    return NULL;
  }
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  ssize_t n;
  do n = sendto(fd, msg, len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, "send the netlink request", errno);
  napi_create_array(env, &arr);
  uint32_t count = 0;
  for (;;) {
    char probe;
    ssize_t size;
    do size = recv(fd, &probe, 1, MSG_PEEK | MSG_TRUNC);
    while (size < 0 && errno == EINTR);
    if (size < 0) return throw_errno(env, "read the netlink answer", errno == EAGAIN ? ETIMEDOUT : errno);
    void *data;
    napi_value buf;
    if (napi_create_buffer(env, (size_t)size, &data, &buf) != napi_ok) return NULL;
    do n = recv(fd, data, (size_t)size, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) return throw_errno(env, "read the netlink answer", errno);
    napi_set_element(env, arr, count++, buf);
    int done = 0;
    int left = (int)n;
    for (struct nlmsghdr *h = data; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left))
      if (h->nlmsg_seq == seq && (h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_DONE)) done = 1;
    if (done) break;
  }
  return arr;
}

NAPI_MODULE_INIT() {
  napi_value fn, c;
  napi_create_function(env, "setns", NAPI_AUTO_LENGTH, Setns, NULL, &fn);
  napi_set_named_property(env, exports, "setns", fn);
  napi_create_function(env, "flock", NAPI_AUTO_LENGTH, Flock, NULL, &fn);
  napi_set_named_property(env, exports, "flock", fn);
  napi_create_function(env, "peerCred", NAPI_AUTO_LENGTH, PeerCred, NULL, &fn);
  napi_set_named_property(env, exports, "peerCred", fn);
  napi_create_function(env, "sendGarp", NAPI_AUTO_LENGTH, SendGarp, NULL, &fn);
  napi_set_named_property(env, exports, "sendGarp", fn);
  napi_create_function(env, "nlOpen", NAPI_AUTO_LENGTH, NlOpen, NULL, &fn);
  napi_set_named_property(env, exports, "nlOpen", fn);
  napi_create_function(env, "nlTransact", NAPI_AUTO_LENGTH, NlTransact, NULL, &fn);
  napi_set_named_property(env, exports, "nlTransact", fn);
  napi_create_int32(env, CLONE_NEWNET, &c);
  napi_set_named_property(env, exports, "CLONE_NEWNET", c);
  napi_create_int32(env, LOCK_EX, &c);
  napi_set_named_property(env, exports, "LOCK_EX", c);
  napi_create_int32(env, LOCK_NB, &c);
  napi_set_named_property(env, exports, "LOCK_NB", c);
  napi_create_int32(env, LOCK_UN, &c);
  napi_set_named_property(env, exports, "LOCK_UN", c);
  napi_create_int32(env, EWOULDBLOCK, &c);
  napi_set_named_property(env, exports, "EWOULDBLOCK", c);
  return exports;
}
