/*-------------------------------------------------------------------------
 * quota.h
 *	  The limiter's state that outlives a restart, between stockx_quota and
 *	  shared memory.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_QUOTA_H
#define STOCKX_QUOTA_H

extern void stockx_quota_restore(void);
extern void stockx_quota_persist(void);

#endif /* STOCKX_QUOTA_H */
