package cpu

// RopeSlots is ropeSlots, for the tests of the rotation-table cache.
const RopeSlots = ropeSlots
