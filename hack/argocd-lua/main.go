// argocd-lua runs modelramp's Argo CD resource customizations (health check, action discovery,
// actions) through Argo CD's own code, for the tests in tests/unit/test_argocd_*.py.
//
// The shipped argocd-cm.yaml is a patch users merge into their Argo CD install's argocd-cm, so it
// is loaded here the same way: its data merged into a ConfigMap named and labelled as the install
// ships it, read back through Argo CD's settings manager (util/settings), the code the API server
// and application controller use. Health is computed by gitops-engine with those overrides, as
// the controller does; discovery and actions by util/lua, as the API server does, including the
// merge patch it derives from an action's result and its split into spec and status patches.
//
// Usage: argocd-lua ARGOCD_CM_YAML, then one JSON request per line on stdin, one JSON answer per
// line on stdout:
//
//	{"op": "health", "object": {...}}              -> {"health": {"status": ..., "message": ...}}
//	{"op": "discover", "object": {...}}            -> {"actions": [{"name": ..., "disabled": ...}]}
//	{"op": "run", "action": NAME, "object": {...}} -> {"resources": [{"operation": ..., "object": ...,
//	                                                    "patch": ..., "statusPatch": ...}]}
//
// A script error is an answer ({"error": ...}), not a crash, so one bad case fails one test.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/argoproj/gitops-engine/pkg/health"
	jsonpatch "github.com/evanphx/json-patch"
	log "github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
)

const argoCDNamespace = "argocd"

type request struct {
	Op     string          `json:"op"`
	Action string          `json:"action,omitempty"`
	Object json.RawMessage `json:"object"`
}

type resource struct {
	Operation   string          `json:"operation"`
	Object      map[string]any  `json:"object"`
	Patch       json.RawMessage `json:"patch,omitempty"`
	StatusPatch json.RawMessage `json:"statusPatch,omitempty"`
	SpecPatch   json.RawMessage `json:"specPatch,omitempty"`
}

type answer struct {
	Health    *health.HealthStatus      `json:"health,omitempty"`
	Actions   []v1alpha1.ResourceAction `json:"actions,omitempty"`
	Resources []resource                `json:"resources,omitempty"`
	Error     string                    `json:"error,omitempty"`
}

// loadOverrides merges the shipped ConfigMap's data into the install's argocd-cm and reads the
// resource overrides back through Argo CD's settings manager.
func loadOverrides(path string) (map[string]v1alpha1.ResourceOverride, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var shipped corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &shipped); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if shipped.Name != common.ArgoCDConfigMapName {
		return nil, fmt.Errorf("%s: metadata.name is %q, Argo CD reads %q", path, shipped.Name, common.ArgoCDConfigMapName)
	}
	installed := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      common.ArgoCDConfigMapName,
			Namespace: argoCDNamespace,
			Labels:    map[string]string{"app.kubernetes.io/part-of": "argocd"},
		},
		Data: shipped.Data,
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      common.ArgoCDSecretName,
			Namespace: argoCDNamespace,
			Labels:    map[string]string{"app.kubernetes.io/part-of": "argocd"},
		},
	}
	manager := settings.NewSettingsManager(context.Background(), fake.NewClientset(installed, secret), argoCDNamespace)
	return manager.GetResourceOverrides()
}

func handle(overrides map[string]v1alpha1.ResourceOverride, req request) (answer, error) {
	// The API server and controller decode live objects with the unstructured JSON decoder
	// (integers as int64), so the scripts see numbers as they would there.
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(req.Object); err != nil {
		return answer{}, fmt.Errorf("object: %w", err)
	}
	vm := lua.VM{ResourceOverrides: overrides}
	switch req.Op {
	case "health":
		status, err := health.GetResourceHealth(obj, lua.ResourceHealthOverrides(overrides))
		if err != nil {
			return answer{}, err
		}
		if status == nil {
			return answer{}, fmt.Errorf("no health check for %s", lua.GetConfigMapKey(obj.GroupVersionKind()))
		}
		return answer{Health: status}, nil
	case "discover":
		scripts, err := vm.GetResourceActionDiscovery(obj)
		if err != nil {
			return answer{}, err
		}
		actions := []v1alpha1.ResourceAction{}
		if len(scripts) > 0 {
			if actions, err = vm.ExecuteResourceActionDiscovery(obj, scripts); err != nil {
				return answer{}, err
			}
		}
		return answer{Actions: actions}, nil
	case "run":
		return runAction(vm, obj, req.Action)
	}
	return answer{}, fmt.Errorf("unknown op %q (health, discover, run)", req.Op)
}

func runAction(vm lua.VM, live *unstructured.Unstructured, name string) (answer, error) {
	definition, err := vm.GetResourceAction(live, name)
	if err != nil {
		return answer{}, err
	}
	if definition.ActionLua == "" {
		return answer{}, fmt.Errorf("no action %q", name)
	}
	liveBytes, err := json.Marshal(live)
	if err != nil {
		return answer{}, err
	}
	impacted, err := vm.ExecuteResourceAction(live, definition.ActionLua, nil)
	if err != nil {
		return answer{}, err
	}
	resources := []resource{}
	for _, item := range impacted {
		out := resource{Operation: string(item.K8SOperation), Object: item.UnstructuredObj.Object}
		if item.K8SOperation == lua.PatchOperation {
			newBytes, err := json.Marshal(item.UnstructuredObj)
			if err != nil {
				return answer{}, err
			}
			// What the API server sends: a merge patch, split into the status subresource's part
			// and the rest (Argo CD's splitStatusPatch).
			patch, err := jsonpatch.CreateMergePatch(liveBytes, newBytes)
			if err != nil {
				return answer{}, err
			}
			out.Patch = patch
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(patch, &fields); err != nil {
				return answer{}, err
			}
			if status, ok := fields["status"]; ok {
				out.StatusPatch, _ = json.Marshal(map[string]json.RawMessage{"status": status})
				delete(fields, "status")
			}
			if len(fields) > 0 {
				out.SpecPatch, _ = json.Marshal(fields)
			}
		}
		resources = append(resources, out)
	}
	return answer{Resources: resources}, nil
}

func serve(overrides map[string]v1alpha1.ResourceOverride, in io.Reader, out io.Writer) error {
	scanner := bufio.NewScanner(in)
	scanner.Buffer(make([]byte, 0, 1<<20), 64<<20)
	encoder := json.NewEncoder(out)
	for scanner.Scan() {
		var req request
		var reply answer
		if err := json.Unmarshal(scanner.Bytes(), &req); err != nil {
			reply = answer{Error: fmt.Sprintf("request: %v", err)}
		} else if reply, err = handle(overrides, req); err != nil {
			reply = answer{Error: err.Error()}
		}
		if err := encoder.Encode(reply); err != nil {
			return err
		}
	}
	return scanner.Err()
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua ARGOCD_CM_YAML  (JSON requests on stdin, one a line)")
		os.Exit(2)
	}
	// Argo CD's settings manager logs at INFO; answers go to stdout, so keep stderr for errors.
	log.SetLevel(log.WarnLevel)
	log.SetOutput(os.Stderr)
	overrides, err := loadOverrides(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		os.Exit(1)
	}
	if err := serve(overrides, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		os.Exit(1)
	}
}
