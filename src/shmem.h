/*-------------------------------------------------------------------------
 * shmem.h
 *	  Shared memory of stockx_enrich: the hooks that ask for it and hand it
 *	  to the files that own each part.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_SHMEM_H
#define STOCKX_SHMEM_H

extern void stockx_shmem_init(void);
extern void stockx_check_shared(void);

#endif /* STOCKX_SHMEM_H */
