package gitstate

import "testing"

func TestDisplayURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://alice:s3cret@git.example.com/team/app.git", "https://git.example.com/team/app.git"},
		{"https://ghp_token@github.com/acme/app.git", "https://github.com/acme/app.git"},
		{"http://x-access-token:tok@127.0.0.1:8080/app.git", "http://127.0.0.1:8080/app.git"},
		{"https://user:p@ss@host/app.git", "https://host/app.git"},
		{"ssh://git@host:22/app.git", "ssh://host:22/app.git"},
		{"https://host/app.git?u=a@b", "https://host/app.git?u=a@b"},
		{"https://user:pw@host", "https://host"},
		{"https://git.example.com/team/app.git", "https://git.example.com/team/app.git"},
		{"git@github.com:acme/app.git", "git@github.com:acme/app.git"},
		{"/srv/git/app.git", "/srv/git/app.git"},
		{"../remote.git", "../remote.git"},
		{"", ""},
	} {
		if got := DisplayURL(tc.in); got != tc.want {
			t.Errorf("DisplayURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
