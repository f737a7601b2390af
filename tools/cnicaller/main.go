// cnicaller: a CNI runtime-side caller built on Debian's libcni (golang-github-appc-cni-dev), the
// library every Go runtime (containerd, CRI-O, podman) uses. tcnp's e2e tests drive the built
// executable through it.
//
//	cnicaller add|check|del <network> <netns-path> [containerID]
//	cnicaller gc|status|version|validate <network>
//
// Environment: NETCONFPATH (conf dir, default /etc/cni/net.d), CNI_PATH, CNI_IFNAME (default eth0),
// CNI_ARGS ("K=V;K=V"), CAP_ARGS (JSON capability args), CNI_CACHEDIR (default /var/lib/cni),
// VALID_ATTACHMENTS ("containerID/ifname,..." for gc).
//
// Debian 12 ships libcni 1.1.2, which speaks spec versions up to 1.0.0. For a 1.1.0 list, ADD,
// CHECK and DEL run each plugin through libcni's exec layer (invoke.RawExec) with the same config
// injection, chaining and result cache that libcni performs; GC and STATUS (added to libcni in
// 1.2) are built the same way, following the 1.1.0 spec.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
)

func env(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func die(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type caller struct {
	list     *libcni.NetworkConfigList
	cni      *libcni.CNIConfig
	paths    []string
	cacheDir string
	rt       *libcni.RuntimeConf
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: cnicaller add|check|del <net> <netns> [containerID] | gc|status|version|validate <net>")
		os.Exit(2)
	}
	cmd, name := os.Args[1], os.Args[2]
	list, err := libcni.LoadConfList(env("NETCONFPATH", "/etc/cni/net.d"), name)
	die(err)
	c := &caller{list: list, paths: filepath.SplitList(env("CNI_PATH", "/opt/cni/bin")), cacheDir: env("CNI_CACHEDIR", "/var/lib/cni")}
	c.cni = libcni.NewCNIConfigWithCacheDir(c.paths, c.cacheDir, nil)
	c.rt = &libcni.RuntimeConf{IfName: env("CNI_IFNAME", "eth0")}
	if len(os.Args) > 3 {
		netns, err := filepath.Abs(os.Args[3])
		die(err)
		c.rt.NetNS = netns
		c.rt.ContainerID = "cnicaller-" + filepath.Base(netns)
	}
	if len(os.Args) > 4 {
		c.rt.ContainerID = os.Args[4]
	}
	if a := os.Getenv("CNI_ARGS"); a != "" {
		for _, kv := range strings.Split(a, ";") {
			if p := strings.SplitN(kv, "=", 2); len(p) == 2 {
				c.rt.Args = append(c.rt.Args, [2]string{p[0], p[1]})
			}
		}
	}
	if ca := os.Getenv("CAP_ARGS"); ca != "" {
		die(json.Unmarshal([]byte(ca), &c.rt.CapabilityArgs))
	}
	ctx := context.Background()
	modern := list.CNIVersion == "1.1.0"
	switch cmd {
	case "add":
		if modern {
			out, err := c.rawAdd(ctx)
			die(err)
			fmt.Println(string(out))
			return
		}
		res, err := c.cni.AddNetworkList(ctx, list, c.rt)
		if res != nil {
			die(res.Print())
		}
		die(err)
	case "check":
		if modern {
			die(c.rawCheckDel(ctx, "CHECK"))
			return
		}
		die(c.cni.CheckNetworkList(ctx, list, c.rt))
	case "del":
		if modern {
			die(c.rawCheckDel(ctx, "DEL"))
			return
		}
		die(c.cni.DelNetworkList(ctx, list, c.rt))
	case "gc":
		die(c.gc(ctx))
	case "status":
		die(c.status(ctx))
	case "validate":
		caps, err := c.cni.ValidateNetworkList(ctx, list)
		die(err)
		fmt.Println(strings.Join(caps, ","))
	case "version":
		for _, p := range list.Plugins {
			v, err := c.cni.GetVersionInfo(ctx, p.Network.Type)
			die(err)
			fmt.Printf("%s: %s\n", p.Network.Type, strings.Join(v.SupportedVersions(), ","))
		}
	default:
		die(fmt.Errorf("unknown command %q", cmd))
	}
}

// pluginConf injects what libcni injects into every plugin's config: name, cniVersion,
// prevResult, and runtimeConfig for the capabilities the plugin declares.
func (c *caller) pluginConf(p *libcni.NetworkConfig, prev json.RawMessage, extra map[string]interface{}) ([]byte, error) {
	var m map[string]interface{}
	if err := json.Unmarshal(p.Bytes, &m); err != nil {
		return nil, err
	}
	m["name"] = c.list.Name
	m["cniVersion"] = c.list.CNIVersion
	delete(m, "capabilities")
	if prev != nil {
		m["prevResult"] = prev
	}
	rc := map[string]interface{}{}
	for capName, on := range p.Network.Capabilities {
		if v, ok := c.rt.CapabilityArgs[capName]; ok && on {
			rc[capName] = v
		}
	}
	if len(rc) > 0 {
		m["runtimeConfig"] = rc
	}
	for k, v := range extra {
		m[k] = v
	}
	return json.Marshal(m)
}

func (c *caller) exec(ctx context.Context, p *libcni.NetworkConfig, command string, conf []byte) ([]byte, error) {
	path, err := invoke.FindInPath(p.Network.Type, c.paths)
	if err != nil {
		return nil, err
	}
	args := &invoke.Args{Command: command, ContainerID: c.rt.ContainerID, NetNS: c.rt.NetNS, IfName: c.rt.IfName, PluginArgs: c.rt.Args, Path: strings.Join(c.paths, string(os.PathListSeparator))}
	out, err := (&invoke.RawExec{Stderr: os.Stderr}).ExecPlugin(ctx, path, conf, args.AsEnv())
	if err != nil {
		return nil, fmt.Errorf("plugin type=%q failed (%s): %w", p.Network.Type, strings.ToLower(command), err)
	}
	return out, nil
}

func (c *caller) cacheFile() string {
	return filepath.Join(c.cacheDir, "results", fmt.Sprintf("%s-%s-%s", c.list.Name, c.rt.ContainerID, c.rt.IfName))
}

func (c *caller) rawAdd(ctx context.Context) ([]byte, error) {
	var prev json.RawMessage
	for _, p := range c.list.Plugins {
		conf, err := c.pluginConf(p, prev, nil)
		if err != nil {
			return nil, err
		}
		out, err := c.exec(ctx, p, "ADD", conf)
		if err != nil {
			return nil, err
		}
		var probe map[string]interface{}
		if err := json.Unmarshal(out, &probe); err != nil {
			return nil, fmt.Errorf("plugin type=%q printed a result that is not JSON: %v", p.Network.Type, err)
		}
		if v, _ := probe["cniVersion"].(string); v != "" && v != c.list.CNIVersion {
			return nil, fmt.Errorf("plugin type=%q answered version %q to a %q config", p.Network.Type, v, c.list.CNIVersion)
		}
		prev = out
	}
	entry := map[string]interface{}{"kind": "cniCacheV1", "containerId": c.rt.ContainerID, "config": base64.StdEncoding.EncodeToString(c.list.Bytes), "ifName": c.rt.IfName, "networkName": c.list.Name, "netns": c.rt.NetNS, "result": prev}
	b, _ := json.Marshal(entry)
	if err := os.MkdirAll(filepath.Dir(c.cacheFile()), 0700); err != nil {
		return nil, err
	}
	return prev, os.WriteFile(c.cacheFile(), b, 0600)
}

func (c *caller) cachedResult() json.RawMessage {
	b, err := os.ReadFile(c.cacheFile())
	if err != nil {
		return nil
	}
	var e struct {
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(b, &e) != nil {
		return nil
	}
	return e.Result
}

func (c *caller) rawCheckDel(ctx context.Context, command string) error {
	prev := c.cachedResult()
	plugins := c.list.Plugins
	if command == "DEL" {
		plugins = make([]*libcni.NetworkConfig, len(c.list.Plugins))
		for i, p := range c.list.Plugins {
			plugins[len(plugins)-1-i] = p
		}
	}
	for _, p := range plugins {
		conf, err := c.pluginConf(p, prev, nil)
		if err != nil {
			return err
		}
		if _, err := c.exec(ctx, p, command, conf); err != nil {
			return err
		}
	}
	if command == "DEL" {
		_ = os.Remove(c.cacheFile())
	}
	return nil
}

func (c *caller) gc(ctx context.Context) error {
	valid := []map[string]string{}
	for _, a := range strings.Split(os.Getenv("VALID_ATTACHMENTS"), ",") {
		if p := strings.SplitN(a, "/", 2); len(p) == 2 {
			valid = append(valid, map[string]string{"containerID": p[0], "ifname": p[1]})
		}
	}
	extra := map[string]interface{}{"cni.dev/valid-attachments": valid, "cni.dev/attachments": valid}
	for _, p := range c.list.Plugins {
		conf, err := c.pluginConf(p, nil, extra)
		if err != nil {
			return err
		}
		if _, err := c.exec(ctx, p, "GC", conf); err != nil {
			return err
		}
	}
	return nil
}

func (c *caller) status(ctx context.Context) error {
	for _, p := range c.list.Plugins {
		conf, err := c.pluginConf(p, nil, nil)
		if err != nil {
			return err
		}
		if _, err := c.exec(ctx, p, "STATUS", conf); err != nil {
			return err
		}
	}
	return nil
}
