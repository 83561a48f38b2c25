package notify

import (
	"encoding/json"
	"net/url"
	"strings"
)

// shape is the JSON a destination gets.
type shape int

const (
	// shapeJSON: the fields of Event, nothing else.
	shapeJSON shape = iota
	// shapeSlack: Event's fields and "text", the message Slack displays.
	// Slack's incoming webhooks read text (or blocks) and pass over keys
	// they do not know.
	shapeSlack
	// shapeDiscord: Event's fields, "content" (the message Discord
	// displays, at most 2000 characters) and "allowed_mentions" with no
	// parse types, so that a message holding @everyone pings nobody.
	// Discord needs content (or embeds) and passes over unknown keys.
	shapeDiscord
)

// String names the shape, for tests and logs.
func (s shape) String() string {
	switch s {
	case shapeSlack:
		return "slack"
	case shapeDiscord:
		return "discord"
	}
	return "json"
}

// discordMaxContent is the most characters Discord takes in content.
const discordMaxContent = 2000

// shapeOf tells the shape a URL gets from its host and path: Slack's
// incoming webhooks live on hooks.slack.com; Discord's under /api/webhooks/
// (or /api/vN/webhooks/) of discord.com, discordapp.com and their ptb. and
// canary. hosts, where a path ending in /slack is Discord's Slack-compatible
// endpoint, which takes Slack's shape. Any other URL gets the plain JSON.
func shapeOf(u *url.URL) shape {
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	switch host {
	case "hooks.slack.com":
		return shapeSlack
	case "discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com",
		"ptb.discordapp.com", "canary.discordapp.com":
		p := strings.TrimSuffix(u.Path, "/")
		if !strings.HasPrefix(p, "/api/") || !strings.Contains(p, "/webhooks/") {
			return shapeJSON
		}
		if strings.HasSuffix(p, "/slack") {
			return shapeSlack
		}
		return shapeDiscord
	}
	return shapeJSON
}

// payload is the body of ev for a destination of shape s.
func payload(s shape, ev Event) ([]byte, error) {
	switch s {
	case shapeSlack:
		return json.Marshal(struct {
			Event
			Text string `json:"text"`
		}{ev, slackEscape(ev.Text())})
	case shapeDiscord:
		type mentions struct {
			Parse []string `json:"parse"`
		}
		return json.Marshal(struct {
			Event
			Content         string   `json:"content"`
			AllowedMentions mentions `json:"allowed_mentions"`
		}{ev, truncate(ev.Text(), discordMaxContent), mentions{Parse: []string{}}})
	}
	return json.Marshal(ev)
}

// slackEscape escapes the three characters Slack's text formatting gives a
// meaning: &, < and >.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// truncate cuts s to at most n characters, ending in "…" when cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
