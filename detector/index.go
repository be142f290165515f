package detector

import "unsafe"

// index maps the hashes of a shard's series to their entry slots. It is a hash table with open
// addressing and linear probing over 8-byte slots, each holding the low 32 bits of a series' hash
// (its tag) above the entry's slot number plus one (0 is an empty slot), so that a lookup
// usually reads one cache line, and a table costs 8 bytes per slot at a load between 3/8 and
// 3/4. Series whose tags are equal, by chance or because their hashes are, sit in consecutive
// slots and are told apart by the entries' full hashes and labels, which the caller compares.
type index struct {
	slots []uint64
	n     int // slots in use
}

// indexTag is the part of a hash an index slot keeps; it also picks the slot a probe starts at.
func indexTag(h uint64) uint32 { return uint32(h) }

func indexSlot(tag uint32, i int32) uint64 { return uint64(tag)<<32 | uint64(uint32(i)+1) }

// cursor walks the entry slots whose tag is a hash's, in probe order.
type cursor struct {
	slots   []uint64
	tag     uint32
	p, mask int
}

// find starts a walk over the entry slots of h's tag.
func (x *index) find(h uint64) cursor {
	tag := indexTag(h)
	return cursor{slots: x.slots, tag: tag, p: int(tag), mask: len(x.slots) - 1}
}

// next returns the next entry slot, -1 when there is none.
func (c *cursor) next() int32 {
	if len(c.slots) == 0 {
		return -1
	}
	for {
		s := c.slots[c.p&c.mask]
		c.p = c.p&c.mask + 1
		if s == 0 {
			c.slots = nil
			return -1
		}
		if uint32(s>>32) == c.tag {
			return int32(uint32(s)) - 1
		}
	}
}

// prefetch prefetches the slot a lookup of h reads first.
func (x *index) prefetch(h uint64) {
	if len(x.slots) > 0 {
		prefetch(uintptr(unsafe.Pointer(&x.slots[int(indexTag(h))&(len(x.slots)-1)])), 8)
	}
}

// first returns the entry slot of the first series with h's tag, -1 if none.
func (x *index) first(h uint64) int32 {
	c := x.find(h)
	return c.next()
}

// add maps h to entry slot i.
func (x *index) add(h uint64, i int32) {
	if 4*(x.n+1) > 3*len(x.slots) {
		x.grow()
	}
	x.put(indexSlot(indexTag(h), i))
	x.n++
}

func (x *index) put(s uint64) {
	mask := len(x.slots) - 1
	p := int(uint32(s>>32)) & mask
	for x.slots[p] != 0 {
		p = (p + 1) & mask
	}
	x.slots[p] = s
}

func (x *index) grow() {
	old := x.slots
	x.slots = make([]uint64, max(8, 2*len(old)))
	for _, s := range old {
		if s != 0 {
			x.put(s)
		}
	}
}

// delete removes the mapping of h to entry slot i, shifting the slots after it back so that no
// probe stops early at the hole.
func (x *index) delete(h uint64, i int32) {
	if len(x.slots) == 0 {
		return
	}
	want, mask := indexSlot(indexTag(h), i), len(x.slots)-1
	p := int(indexTag(h)) & mask
	for x.slots[p] != want {
		if x.slots[p] == 0 {
			return // not there
		}
		p = (p + 1) & mask
	}
	for j := p; ; {
		j = (j + 1) & mask
		s := x.slots[j]
		if s == 0 {
			break
		}
		// s stays unless its home slot k is cyclically outside (p, j]: then the hole at p is on
		// its probe path, and it moves there.
		k := int(uint32(s>>32)) & mask
		if p <= j && (k <= p || k > j) || p > j && k <= p && k > j {
			x.slots[p] = s
			p = j
		}
	}
	x.slots[p] = 0
	x.n--
}

// len is the number of mappings.
func (x *index) len() int { return x.n }
