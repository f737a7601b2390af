// tcnp-cni: the executable a container runtime runs for each tcnp plugin name. It forwards the
// request (the plugin's name, its environment and stdin) to the node agent on its root-only unix
// socket and prints the agent's answer; when no agent answers it runs the plugin itself, by
// executing the tcnp executable beside it under the same name. A Go process starts in a few
// milliseconds, a Node one in tens to hundreds: this is on every pod's path (README, "Node agent").
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const defaultSocket = "/run/tcnp/agent.sock"

type request struct {
	Op     string            `json:"op"`
	Plugin string            `json:"plugin"`
	Env    map[string]string `json:"env"`
	Stdin  string            `json:"stdin"`
}

type response struct {
	ExitCode *int   `json:"exitCode"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	Error    string `json:"error"`
}

// trusted: a socket owned by us in a directory owned by us that no one else may write.
func trusted(sock string) bool {
	euid := uint32(os.Geteuid())
	var st syscall.Stat_t
	if syscall.Lstat(sock, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK || st.Uid != euid {
		return false
	}
	var dir syscall.Stat_t
	if syscall.Stat(filepath.Dir(sock), &dir) != nil || dir.Uid != euid || dir.Mode&0o022 != 0 {
		return false
	}
	return true
}

// fallback: become the Node plugin (the tcnp executable beside us), with our name as argv[0].
func fallback(name string, stdin []byte) {
	self, err := os.Executable()
	if err != nil {
		fail(name, "cannot find the tcnp executable: "+err.Error())
	}
	bin := filepath.Join(filepath.Dir(self), "tcnp")
	if len(stdin) > 0 {
		// stdin was read already: hand it over in an unlinked temporary file.
		f, err := os.CreateTemp("", "tcnp-stdin-")
		if err != nil {
			fail(name, "cannot keep stdin: "+err.Error())
		}
		os.Remove(f.Name())
		if _, err := f.Write(stdin); err != nil {
			fail(name, "cannot keep stdin: "+err.Error())
		}
		if _, err := f.Seek(0, 0); err != nil {
			fail(name, "cannot keep stdin: "+err.Error())
		}
		if err := syscall.Dup2(int(f.Fd()), 0); err != nil {
			fail(name, "dup2: "+err.Error())
		}
	}
	err = syscall.Exec(bin, []string{name}, os.Environ())
	fail(name, fmt.Sprintf("cannot run %s: %v", bin, err))
}

func fail(name, msg string) {
	b, _ := json.Marshal(map[string]interface{}{"cniVersion": "0.4.0", "code": 11, "msg": "tcnp forwarder failed", "details": name + ": " + msg})
	os.Stdout.Write(append(b, '\n'))
	os.Exit(1)
}

func main() {
	name := filepath.Base(os.Args[0])
	stdin, _ := io.ReadAll(os.Stdin)
	sock := os.Getenv("TCNP_AGENT_SOCKET")
	if sock == "" {
		sock = defaultSocket
	}
	if os.Getenv("TCNP_AGENT") == "off" || !trusted(sock) {
		fallback(name, stdin)
	}
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		fallback(name, stdin)
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if i := strings.IndexByte(kv, '='); i > 0 {
			env[kv[:i]] = kv[i+1:]
		}
	}
	req, _ := json.Marshal(request{Op: "cni", Plugin: name, Env: env, Stdin: string(stdin)})
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	if _, err := c.Write(append(req, '\n')); err != nil {
		// Nothing reached the agent: doing the work here is safe.
		c.Close()
		fallback(name, stdin)
	}
	out, err := io.ReadAll(c)
	c.Close()
	var r response
	if err != nil || json.Unmarshal(out, &r) != nil || r.ExitCode == nil {
		// The agent took the request and went away (killed, restarted): its outcome is unknown, and the
		// runtime's rules (DEL after a failed ADD) clean up whatever it did.
		detail := r.Error
		if detail == "" {
			detail = "the agent closed the connection without an answer (restarted or killed?)"
		}
		fail(name, "the tcnp agent on "+sock+" failed the request: "+detail)
	}
	os.Stdout.WriteString(r.Stdout)
	os.Stderr.WriteString(r.Stderr)
	os.Exit(*r.ExitCode)
}
