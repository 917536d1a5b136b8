/** Deletion marks: pending deletions recorded in the state bucket (docs/FORMAT.md, "Deletion marks"). */
export { MAX_SEGMENTS_PER_MARK, encodeMark, identityId, markHolds, newMark, parseMark, type MarkDocument } from './document.ts';
export { DeletionMarks, openDeletionMarks, type ListedMark, type MarkS3, type ReadMark } from './markStore.ts';
export { cancelDeletion, cancelInMark } from './cancel.ts';
export { PendingDeletionsIndex, type PendingIndexOptions } from './pendingIndex.ts';
export { readAllMarks, summarise, type AllMarks, type PendingSummary } from './summary.ts';
