package sqlstore

import (
	"context"
	"sync"

	"github.com/taskgate/taskgate/tasks/store"
)

// hub fans notifications out to in-process listeners. A listener whose
// buffer is full loses notifications and is sent NotifyOverflow once it has
// room again, so writers never block on a slow reader.
type hub struct {
	mu        sync.Mutex
	listeners map[*listener]struct{}
}

type listener struct {
	ch       chan store.Notification
	overflow bool
}

const listenerBuffer = 1 << 16

func (h *hub) listen(ctx context.Context) <-chan store.Notification {
	l := &listener{ch: make(chan store.Notification, listenerBuffer)}
	h.mu.Lock()
	if h.listeners == nil {
		h.listeners = map[*listener]struct{}{}
	}
	h.listeners[l] = struct{}{}
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		if _, ok := h.listeners[l]; ok {
			delete(h.listeners, l)
			close(l.ch)
		}
		h.mu.Unlock()
	}()
	return l.ch
}

func (h *hub) publish(ns []store.Notification) {
	if len(ns) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for l := range h.listeners {
		for _, n := range ns {
			if l.overflow {
				select {
				case l.ch <- store.Notification{Kind: store.NotifyOverflow}:
					l.overflow = false
				default:
					continue
				}
			}
			select {
			case l.ch <- n:
			default:
				l.overflow = true
			}
		}
	}
}

// closeAll ends every listener (the store is closing).
func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for l := range h.listeners {
		delete(h.listeners, l)
		close(l.ch)
	}
}
