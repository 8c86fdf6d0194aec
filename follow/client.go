package follow

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/codemachine/codemachine/orchestrator"
)

// maxLine bounds one protocol line (an event's message is a failure's
// text at most).
const maxLine = 4 << 20

// Conn is a follower's connection to a lock holder.
type Conn struct {
	conn  net.Conn
	sc    *bufio.Scanner
	hello Hello
}

// ErrNotServing means no process serves events at the socket: the pid is
// not a codemachine that holds the lock (any more), or one too old to
// serve them.
var ErrNotServing = errors.New("not serving events")

// Dial connects to the events of process pid for the repository whose
// codemachine directory is localDir and reads its Hello.
func Dial(ctx context.Context, localDir string, pid int) (*Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", SocketPath(localDir, pid))
	if err != nil {
		return nil, fmt.Errorf("follow pid %d: %w (%w)", pid, ErrNotServing, err)
	}
	c := &Conn{conn: conn, sc: bufio.NewScanner(conn)}
	c.sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	m, err := c.next()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if m.Hello == nil {
		conn.Close()
		return nil, fmt.Errorf("follow pid %d: the first line is not a hello", pid)
	}
	c.hello = *m.Hello
	return c, nil
}

// Hello is what the process said when the connection was made.
func (c *Conn) Hello() Hello { return c.hello }

// Next returns the next event; io.EOF (wrapped) once the process stopped
// serving (it ended, or dropped this follower for lagging).
func (c *Conn) Next() (orchestrator.Event, error) {
	m, err := c.next()
	if err != nil {
		return orchestrator.Event{}, err
	}
	if m.Event == nil {
		return orchestrator.Event{}, errors.New("follow: a line without an event")
	}
	return *m.Event, nil
}

func (c *Conn) next() (message, error) {
	var m message
	if !c.sc.Scan() {
		if err := c.sc.Err(); err != nil {
			return m, fmt.Errorf("follow: %w", err)
		}
		return m, fmt.Errorf("follow: %w", io.EOF)
	}
	if err := json.Unmarshal(c.sc.Bytes(), &m); err != nil {
		return m, fmt.Errorf("follow: %w", err)
	}
	return m, nil
}

// Close ends the connection.
func (c *Conn) Close() error { return c.conn.Close() }
